"""A child process owned by the job: argv only (never a shell), output to a log file, dies with us.

The child runs in its own process group (so a stop reaches its children too) and, on Linux, receives SIGKILL
if the orchestrator dies (``kill -9``), so a re-run never finds an orphan still writing checkpoints.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.core.errors import ConfigError

_PR_SET_PDEATHSIG = 1


def _death_signal_setter() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:  # runs in the child between fork and exec: keep it tiny
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_death_signal


#: ``preexec_fn`` that makes a child die with this process (None where unsupported); for every long child.
SET_DEATH_SIGNAL = _death_signal_setter()


class ManagedProcess:
    """One run of a child program."""

    def __init__(self, argv: Sequence[str], log_path: Path, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self._read_pos = self._log.tell()
        self._partial = b""
        try:
            self.proc = subprocess.Popen(
                self.argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=SET_DEATH_SIGNAL,  # noqa: PLW1509 - one prctl call, no locks taken
            )
        except FileNotFoundError as exc:
            self._log.close()
            raise ConfigError(f"command: program not found: {self.argv[0]!r} ({exc.strerror})") from None
        except PermissionError as exc:
            self._log.close()
            raise ConfigError(f"command: cannot execute {self.argv[0]!r}: {exc.strerror}") from None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def new_lines(self) -> list[str]:
        """Complete output lines written since the last call (read back from the log file)."""
        with open(self.log_path, "rb") as fh:
            fh.seek(self._read_pos)
            chunk = fh.read()
            self._read_pos = fh.tell()
        data = self._partial + chunk
        *lines, self._partial = data.replace(b"\r", b"\n").split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def tail(self, count: int = 20) -> list[str]:
        with open(self.log_path, "rb") as fh:
            fh.seek(max(0, self.log_path.stat().st_size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
        return list(deque((line for line in text.splitlines() if line.strip()), maxlen=count))

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Ask politely, then SIGKILL the whole group after ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.signal_group(sig)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.signal_group(signal.SIGKILL)
        code = self.proc.wait()
        self.close()
        return code

    def close(self) -> None:
        if not self._log.closed:
            self._log.close()
