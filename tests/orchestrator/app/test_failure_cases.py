"""Issue 9's first list, one test per case, through the CLI as a user runs it (command and darknet kinds).

Each test reproduces what was seen on main (a wrong completion, a stranded or overwritten home, a traceback, a
hang) and asserts what the user sees now: the exit code, one line naming the file or field, a home left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from tests.conftest import REPO, cli, job_yaml
from tests.orchestrator.identity import work_folder

FAST = {"STEPS": "6", "STEP_SECONDS": "0.02"}


def home_snapshot(home: Path) -> dict[str, bytes]:
    """Every file of a job home with its bytes (a folder that does not exist snapshots as {})."""
    if not home.exists():
        return {}
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def journal(home: Path) -> list[dict]:
    return [json.loads(line) for line in (home / "journal.jsonl").read_text().splitlines() if line.strip()]


def run_main(job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
             env: dict[str, str] | None = None) -> tuple[int, str, str]:
    monkeypatch.chdir(job_dir)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


class Background:
    """``orchestrator ARGS`` in the background, its output going to files (a pipe nobody reads would fill up
    and block the process, as no notebook cell does)."""

    def __init__(self, job_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out_path, self.err_path = job_dir.parent / f"out-{id(self)}", job_dir.parent / f"err-{id(self)}"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=job_dir, stdout=out,
                                         stderr=err, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        return code, self.out_path.read_text(errors="replace"), self.err_path.read_text(errors="replace")


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


@contextmanager
def small_mount(folder: Path, options: str) -> Iterator[Path]:
    """A real tmpfs at ``folder`` (read-only, or a few KiB): the file system's own EROFS/ENOSPC, no double."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


# -- 1. same name, other checkpoint_dir ------------------------------------------------------------------------
def test_1_same_name_in_another_checkpoint_dir_runs_its_own_program(job_dir: Path) -> None:
    extra = "local_output: true\n"
    (job_dir / "a.yaml").write_text(job_yaml(extra=extra))
    (job_dir / "b.yaml").write_text(job_yaml(extra=extra).replace("checkpoint_dir: ./jobs", "checkpoint_dir: ./other"))
    assert cli(job_dir, "run", "a.yaml", env=FAST).returncode == 0
    result = cli(job_dir, "run", "b.yaml", env=FAST)
    assert result.returncode == 0, result.stderr
    b_home = job_dir / "other" / "count"
    logs = "".join(p.read_text() for p in (b_home / "logs").glob("*.command.log"))
    assert "fresh start" in logs and "step 6/6" in logs  # its own program ran, from the start
    assert list((b_home / "store").rglob("*ckpt-*.txt"))  # and its own store received its checkpoints
    assert work_folder(job_dir, "count") != work_folder(job_dir, "count", checkpoint_dir="other")


# -- 2. completed with nothing durable -------------------------------------------------------------------------
def test_2_a_completion_whose_result_is_gone_says_so_and_continues(job_dir: Path) -> None:
    assert cli(job_dir, "run", "job.yaml", env=FAST).returncode == 0
    (job_dir / "jobs" / "count" / "output" / "done.txt").unlink()  # e.g. deleted from Drive's web page
    result = cli(job_dir, "run", "job.yaml", env=FAST)
    assert result.returncode == 0, result.stderr
    assert "recorded as completed, but done.txt is gone" in result.stderr
    assert (job_dir / "jobs" / "count" / "output" / "done.txt").exists()


# -- 3. kind changed -------------------------------------------------------------------------------------------
def test_3_a_kind_change_exits_2_naming_both_kinds_and_leaves_the_home_untouched(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(job_dir, "run", "job.yaml", env=FAST).returncode == 0
    home = job_dir / "jobs" / "count"
    before = home_snapshot(home)
    (job_dir / "dn.yaml").write_text(
        "name: count\nkind: darknet\ncheckpoint_dir: ./jobs\nwork_dir: ./work\n"
        "darknet: {binary: ./train.py}\ndataset: {path: ., classes: [a]}\ncfg: yolov3-tiny\n")
    for extra in ([], ["--reopen"]):
        code, _out, err = run_main(job_dir, monkeypatch, capsys, "run", "dn.yaml", *extra)
        assert code == 2
        assert "holds a 'command' job, but the job file says kind: 'darknet'" in err
        assert "Traceback" not in err
    assert home_snapshot(home) == before


# -- 6. store folder deleted mid-run ---------------------------------------------------------------------------
@pytest.mark.slow
def test_6_a_store_deleted_mid_run_ends_the_session_quickly_and_resumably(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml(extra="local_output: true\n"))
    run = Background(job_dir, "run", "job.yaml", env={"STEPS": "400", "STEP_SECONDS": "0.05"})
    store = job_dir / "jobs" / "count" / "store"
    wait_for(lambda: list(store.rglob("*ckpt-*.txt")))
    shutil.rmtree(store, ignore_errors=True)  # the job writes on meanwhile: a temp file may vanish under us
    removed = time.monotonic()
    code, _out, err = run.finish()
    assert time.monotonic() - removed < 15  # was: still running 4.5 minutes later
    assert code == 75, err
    assert "lost its manifest or checkpoints mid-run" in err and "Traceback" not in err
    state = json.loads((job_dir / "jobs" / "count" / "state.json").read_text())["record"]
    assert state["state"] == "paused" and state["reason"].startswith("storage fault")


def test_6_sigint_is_honoured_within_seconds_and_ends_paused(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml(extra="local_output: true\n"))
    run = Background(job_dir, "run", "job.yaml", env={"STEPS": "400", "STEP_SECONDS": "0.05"})
    store = job_dir / "jobs" / "count" / "store"
    wait_for(lambda: list(store.rglob("*ckpt-*.txt")))
    run.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code, out, err = run.finish(timeout=30)
    assert time.monotonic() - sent < 10
    assert code == 75, err
    assert "stopped as you asked" in out


# -- 7. --takeover while the holder is alive -------------------------------------------------------------------
@pytest.mark.slow
def test_7_takeover_leaves_one_writer_and_the_old_session_ends_lease_lost(job_dir: Path) -> None:
    env = {"STEPS": "60", "STEP_SECONDS": "0.1"}
    first = Background(job_dir, "run", "job.yaml", env=env)
    home = job_dir / "jobs" / "count"
    wait_for(lambda: list((home / "output").glob("ckpt-*.txt")))
    second = cli(job_dir, "run", "job.yaml", "--takeover", env=env)
    code, out, err = first.finish()
    assert second.returncode == 0, second.stderr
    assert code == 3, err
    assert "another session took the job over" in out
    events = journal(home)
    takeover = next(i for i, e in enumerate(events) if e["event"] == "lease_takeover")
    after = [e for e in events[takeover:] if e["event"] == "transition"]
    assert [e["to_state"] for e in after].count("completed") == 1
    old = events[takeover]["previous_session"]
    by_old = [e for e in events[takeover:] if e.get("session") == old and e.get("detected_by") != "next run"]
    assert by_old == []  # the old session wrote nothing after the takeover (it was: both wrote ~20 s)


# -- 8. file-system errors -------------------------------------------------------------------------------------
def test_8_a_read_only_checkpoint_dir_gives_exit_75_and_one_line(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(job_dir / "jobs")
    with small_mount(job_dir / "jobs", "ro,size=1m"):
        code, _out, err = run_main(job_dir, monkeypatch, capsys, "run", "job.yaml", env=FAST)
    assert code == 75
    assert "Traceback" not in err and "Logging error" not in err
    line = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "Read-only file system" in line[0] and "jobs" in line[0]


def test_8_a_full_checkpoint_dir_gives_exit_75_one_line_and_a_resumable_state(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(job_dir / "jobs")
    with small_mount(job_dir / "jobs", "size=128k"):
        env = {"STEPS": "400", "STEP_SECONDS": "0.01"}  # fills the 128 KiB with checkpoints mid-run
        code, _out, err = run_main(job_dir, monkeypatch, capsys, "run", "job.yaml", env=env)
        assert code == 75, err
        assert "Traceback" not in err and err.count("Logging error") == 0, err[:3000]
        errors = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], err
        state = json.loads((job_dir / "jobs" / "count" / "state.json").read_text())["record"]
        assert state["state"] != "running"


# -- 11. deadline settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("session", "field"), [
    ("{budget: 6m, margin: 10m}", "margin"),
    ("{budget: 1h, margin: 1h}", "margin"),
])
def test_11_a_margin_that_does_not_fit_the_budget_is_refused(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], session: str,
        field: str) -> None:
    text = job_yaml().replace("session: {budget: 1h, margin: 0, heartbeat: 1s}", f"session: {session}")
    (job_dir / "job.yaml").write_text(text)
    for command in ("validate", "run"):
        code, _out, err = run_main(job_dir, monkeypatch, capsys, command, "job.yaml")
        assert code == 2 and field in err and "must be shorter than budget" in err
    assert not (job_dir / "jobs" / "count").exists()


# -- 13. the Drive mount's lazy uploads: journal arrived, state did not ----------------------------------------
def test_13_a_home_whose_state_upload_was_lost_resumes_instead_of_refusing(job_dir: Path) -> None:
    run = Background(job_dir, "run", "job.yaml", env={"STEPS": "30", "STEP_SECONDS": "0.05"})
    home = job_dir / "jobs" / "count"
    wait_for(lambda: len(list((home / "output").glob("ckpt-*.txt"))) >= 3)
    run.proc.kill()
    run.finish()
    for name in ("state.json", "state.prev.json"):
        (home / name).unlink(missing_ok=True)  # the VM died before these uploads reached Drive
    (home / ".state.json.123.abcd.tmp-orch").write_text("{")  # a temp file whose rename never reached Drive
    result = cli(job_dir, "run", "job.yaml", env={"STEPS": "30", "STEP_SECONDS": "0.01"})
    assert result.returncode == 0, result.stderr
    assert "journal but no state file" in result.stderr and "rebuilt" in result.stderr
    logs = "".join(p.read_text() for p in (home / "logs").glob("session-*.command.log"))
    assert "resuming at" in logs  # from the newest checkpoint, not from scratch
    assert not list(home.glob("*.tmp-orch"))
    assert json.loads((home / "state.json").read_text())["record"]["job_id"] == journal(home)[0]["job_id"]


# -- 14. smaller items -----------------------------------------------------------------------------------------
def test_14_validate_and_run_check_paths_before_any_work(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (job_dir / "job.yaml").write_text(job_yaml().replace('"train.py"', '"trainer-that-is-not-there.py"'))
    for command in ("validate", "run"):
        started = time.monotonic()
        code, _out, err = run_main(job_dir, monkeypatch, capsys, command, "job.yaml")
        assert code == 2 and "script not found: 'trainer-that-is-not-there.py'" in err
        assert time.monotonic() - started < 10  # was: ~70 s of restart backoff
    assert not (job_dir / "jobs" / "count").exists()


def test_14_status_into_a_closed_pipe_ends_quietly(job_dir: Path) -> None:
    assert cli(job_dir, "run", "job.yaml", env=FAST).returncode == 0
    status = subprocess.Popen([sys.executable, "-m", "orchestrator", "status", "job.yaml"], cwd=job_dir,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    assert status.stdout is not None
    status.stdout.read(1)
    status.stdout.close()  # `| head -c1`
    _out, err = status.communicate(timeout=30)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    assert status.returncode == 0
