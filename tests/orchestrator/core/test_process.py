"""``ManagedProcess`` with tiny real children: log file, line reading, exit codes, process groups, death signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigError
from orchestrator.core.process import SET_DEATH_SIGNAL, ManagedProcess
from tests.conftest import REPO

PY = sys.executable


def dead(pid: int) -> bool:
    """``pid`` has exited: no such process, or a zombie not yet reaped by its (new) parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        stat = ""
    if stat:
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def gone(pid: int, within: float = 10.0) -> bool:
    """True once ``pid`` has exited (within ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if dead(pid):
            return True
        try:  # our own child: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.02)
    return False


def wait_for_file(path: Path, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} never appeared")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "logs ü" / "session 1.command.log"


def test_output_goes_to_the_log_and_exit_codes_come_back(log: Path, tmp_path: Path) -> None:
    code = "import os, sys; print('out', os.environ['GREETING'], os.getcwd()); print('err', file=sys.stderr); sys.exit(3)"
    proc = ManagedProcess([PY, "-c", code], log, cwd=tmp_path, env={"GREETING": "hallo welt"})
    assert proc.wait(30) == 3 and proc.poll() == 3
    proc.close()
    text = log.read_text()
    assert f"out hallo welt {tmp_path}" in text and "err" in text  # stderr joins stdout in the log


def test_arguments_reach_the_program_verbatim(log: Path) -> None:
    tricky = "$(touch pwned); `id` && echo 'a b' > c; ü"
    proc = ManagedProcess([PY, "-c", "import sys; print(repr(sys.argv[1]))", tricky], log)
    assert proc.wait(30) == 0
    proc.close()
    assert log.read_text().strip() == repr(tricky)


def test_new_lines_returns_complete_lines_once_and_holds_a_partial_one(log: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    code = ("import os, sys, time\n"
            "sys.stdout.write('one\\ntwo\\rthree\\npart'); sys.stdout.flush()\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
            "sys.stdout.write('ial\\n'); sys.stdout.flush()\n")
    proc = ManagedProcess([PY, "-c", code], log)
    deadline = time.monotonic() + 20
    lines: list[str] = []
    while len(lines) < 3 and time.monotonic() < deadline:
        lines += proc.new_lines()
        time.sleep(0.01)
    assert lines == ["one", "two", "three"]  # a carriage return (progress bars) ends a line too
    assert proc.new_lines() == []  # "part" is not a line yet
    go.touch()
    assert proc.wait(30) == 0
    assert proc.new_lines() == ["partial"]
    proc.close()


def test_a_second_run_appends_to_the_log_and_reads_only_its_own_lines(log: Path) -> None:
    first = ManagedProcess([PY, "-c", "print('first run')"], log)
    first.wait(30)
    first.close()
    second = ManagedProcess([PY, "-c", "print('second run')"], log)
    second.wait(30)
    assert second.new_lines() == ["second run"]
    second.close()
    assert log.read_text().splitlines() == ["first run", "second run"]


def test_tail_keeps_the_last_non_blank_lines(log: Path) -> None:
    code = "print('x' * 200_000); [print(f'line {i}\\n') for i in range(30)]"  # a huge first line, blank lines
    proc = ManagedProcess([PY, "-c", code], log)
    proc.wait(30)
    assert proc.tail(3) == ["line 27", "line 28", "line 29"]
    assert len(proc.tail()) == 20
    proc.close()


def test_a_missing_or_non_executable_program_is_a_config_error(log: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="program not found: 'no-such-program-xyz'"):
        ManagedProcess(["no-such-program-xyz", "--flag"], log)
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")  # not chmod +x
    with pytest.raises(ConfigError, match="cannot execute"):
        ManagedProcess([str(script)], log)


def test_stop_reaches_the_whole_process_group(log: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time\n"
            f"g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
            "time.sleep(60)\n")
    proc = ManagedProcess([PY, "-c", code], log)
    grandchild = int(wait_for_file(pid_file))
    assert os.getpgid(proc.pid) == proc.pid  # the child leads its own group: a Ctrl-C of ours does not reach it
    assert os.getpgid(grandchild) == proc.pid
    assert proc.stop(signal.SIGTERM, timeout=10) == -signal.SIGTERM
    assert gone(grandchild)  # the grandchild was in the group: it got the SIGTERM too


def test_stop_kills_a_child_that_ignores_sigterm(log: Path, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (f"import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); open({str(ready)!r}, 'w').write('1')\n"
            "time.sleep(60)\n")
    proc = ManagedProcess([PY, "-c", code], log)
    wait_for_file(ready)
    started = time.monotonic()
    assert proc.stop(signal.SIGTERM, timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 10
    assert proc.poll() == -signal.SIGKILL


def test_stop_of_a_finished_child_returns_its_exit_code(log: Path) -> None:
    proc = ManagedProcess([PY, "-c", "raise SystemExit(7)"], log)
    proc.wait(30)
    assert proc.stop() == 7
    proc.signal_group(signal.SIGTERM)  # no such group any more: ignored


@pytest.mark.skipif(SET_DEATH_SIGNAL is None, reason="the death signal is Linux-only")
def test_the_child_dies_when_the_orchestrator_is_killed(tmp_path: Path) -> None:
    """kill -9 of the orchestrator leaves no orphan writing checkpoints: the child gets SIGKILL from the kernel."""
    pid_file = tmp_path / "child.pid"
    code = ("import sys, time\nfrom pathlib import Path\n"
            "from orchestrator.core.process import ManagedProcess\n"
            f"p = ManagedProcess([sys.executable, '-c', 'import time; time.sleep(60)'], Path({str(tmp_path / 'c.log')!r}))\n"
            f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(60)\n")
    orchestrator = subprocess.Popen([PY, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        child = int(wait_for_file(pid_file, within=30))
        os.kill(child, 0)  # running
        orchestrator.kill()
        orchestrator.wait(10)
        assert gone(child)
    finally:
        if orchestrator.poll() is None:
            orchestrator.kill()
            orchestrator.wait()
