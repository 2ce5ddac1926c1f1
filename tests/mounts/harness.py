"""``mount(backing, cache, **behaviour)``: a Drive mount double as a real FUSE mount, served by a child process.

The model (see ``drive_fs`` and ``upload_queue`` for the details):

- ``backing`` is "Drive": what survives the VM. ``cache`` is the VM's local disk (the mount's cache, and by default
  the mount point ``cache/drive``).
- Slow mount (benchmarks): ``open_latency_s`` per open, ``read_latency_s`` per read request, listing cost ``list_base_s + n * list_cost_per_entry_s``,
  EIO when listing a folder of more than ``list_limit`` entries.
- Lazy uploads (crash trials), ``lazy_uploads=True``: the VM sees its writes at once; they reach ``backing``
  later, per path in order and across paths in a seeded random order, one every ``upload_interval_s`` (None: only
  when ``pump``/``sync``/``flush`` asks).
- ``vanish()``: the VM dies. The FUSE process is killed with SIGKILL (open files on the mount fail from then on),
  the mount is detached, the queue is lost and the local cache is wiped; ``backing`` keeps what was uploaded.
- ``flush()``: what ``google.colab.drive.flush_and_unmount()`` does: every queued change is uploaded, then the mount
  goes away. ``unmount()`` (also the ``with`` block's exit) is the same clean shutdown.

Usage::

    with mount(drive_folder, tmp_path / "vm", lazy_uploads=True, upload_interval_s=None, seed=3) as m:
        (m.path / "state.json").write_text("...")   # visible on m.path at once, not yet in drive_folder
        m.pump(1)                                   # one queued change reaches drive_folder
        m.vanish()                                  # the rest is lost

Needs /dev/fuse, fusermount3 (Debian's fuse3) and mfusepy; ``fuse_unavailable()`` says when /dev/fuse is absent,
for a skip (``tests.mounts.markers.requires_fuse``).
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.mounts.behaviour import MountBehaviour

REPO = Path(__file__).resolve().parents[2]


def fuse_unavailable() -> str | None:
    """Why no FUSE mount can be made on this machine (no /dev/fuse), or None. Tests skip only for this reason:
    a missing fusermount3 or mfusepy is a setup fault, raised by ``mount`` with what to run."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is absent on this machine: the Drive mount double needs FUSE"
    return None


def _check_tools() -> None:
    if shutil.which("fusermount3") is None:
        raise MountError("fusermount3 is missing: run scripts/setup.sh (it installs Debian's fuse3)")
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        raise MountError(f"mfusepy cannot load libfuse ({exc}): run scripts/setup.sh") from exc


class MountError(RuntimeError):
    """The mount double could not start or answer."""


class DriveMount:
    """A running mount double. ``path`` is the mount point the code under test uses as "/content/drive"."""

    def __init__(self, backing: Path, cache: Path, mountpoint: Path, behaviour: MountBehaviour) -> None:
        self.backing, self.cache, self.path, self.behaviour = backing, cache, mountpoint, behaviour
        self._proc: subprocess.Popen[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, timeout: float = 20.0) -> DriveMount:
        _check_tools()
        self.cache.mkdir(parents=True, exist_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        config = {"backing": str(self.backing), "cache": str(self.cache), "mountpoint": str(self.path),
                  "behaviour": asdict(self.behaviour)}
        log = open(self.cache / "mount.log", "ab")  # noqa: SIM115 - the FUSE process's messages, for a failing test to read
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.mounts", json.dumps(config)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                      env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not os.path.ismount(self.path):
            if self._proc.poll() is not None:
                log_tail = (self.cache / "mount.log").read_text(errors="replace")[-2000:]
                raise MountError(f"the mount double exited with {self._proc.returncode} before mounting "
                                 f"{self.path}:\n{log_tail}")
            if time.monotonic() > deadline:
                self.vanish()
                raise MountError(f"the mount double did not mount {self.path} within {timeout:.0f}s")
            time.sleep(0.02)
        return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def vanish(self) -> int:
        """The VM dies: kill the FUSE process, detach the mount, lose the queue and the local cache.

        Returns how many queued changes were lost (-1 when the process no longer answered)."""
        lost = -1
        if self.alive:
            try:
                lost = int(self._ask("pending")["pending"])
            except MountError:
                pass
        if self._proc is not None:
            if self._proc.poll() is None:
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            self._close_pipes()
        self._detach(lazy=True)
        for name in ("view", "blobs"):
            shutil.rmtree(self.cache / name, ignore_errors=True)
        self._proc = None
        return lost

    def flush(self, timeout: float = 60.0) -> None:
        """``drive.flush_and_unmount()``: upload everything queued, then unmount."""
        if not self.alive:
            return
        self.sync()
        self._detach(lazy=False)
        assert self._proc is not None
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        self._close_pipes()
        self._proc = None

    def unmount(self) -> None:
        """A clean shutdown (the ``with`` block's exit): the same as ``flush``."""
        self.flush()

    # -- uploads and counters --------------------------------------------------------------------------------
    def pending(self) -> int:
        """How many changes are queued, not yet on ``backing``."""
        return int(self._ask("pending")["pending"])

    def pump(self, count: int = 1) -> int:
        """Upload up to ``count`` queued changes now (seeded choice among the ready ones); returns how many."""
        return int(self._ask("pump", count=count)["applied"])

    def sync(self) -> int:
        """Upload everything queued (the mount stays); returns how many changes were applied."""
        return int(self._ask("drain")["applied"])

    def stats(self) -> dict[str, int]:
        """Counters since mounting: ``opens``, ``listings``, ``list_errors``."""
        return dict(self._ask("stats")["stats"])

    # -- internals -------------------------------------------------------------------------------------------
    def _ask(self, cmd: str, **args: Any) -> dict[str, Any]:
        if not self.alive or self._proc is None or self._proc.stdin is None or self._proc.stdout is None:
            raise MountError(f"the mount at {self.path} is not running")
        try:
            self._proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except (BrokenPipeError, OSError) as exc:
            raise MountError(f"the mount at {self.path} stopped answering") from exc
        if not line:
            raise MountError(f"the mount at {self.path} stopped answering")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise MountError(str(reply.get("error")))
        return reply

    def _detach(self, lazy: bool) -> None:
        if not os.path.ismount(self.path):
            return
        done = subprocess.run(["fusermount3", "-u", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0 or lazy:
            subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True, check=False)

    def _close_pipes(self) -> None:
        assert self._proc is not None
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass


@contextmanager
def mount(backing: Path, cache: Path, mountpoint: Path | None = None, **behaviour: Any) -> Iterator[DriveMount]:
    """Mount ``backing`` ("Drive") with the VM's cache in ``cache``; see the module docstring for the model.

    ``behaviour`` takes ``MountBehaviour``'s fields: open_latency_s, read_latency_s, list_base_s, list_cost_per_entry_s,
    list_limit, lazy_uploads, upload_interval_s, seed. On exit the mount is flushed and unmounted, unless it
    vanished."""
    m = DriveMount(Path(backing), Path(cache), Path(mountpoint) if mountpoint else Path(cache) / "drive",
                   MountBehaviour(**behaviour))
    m.start()
    try:
        yield m
    finally:
        if m.alive:
            try:
                m.unmount()
            except BaseException:
                m.vanish()
                raise
        else:
            m._detach(lazy=True)
