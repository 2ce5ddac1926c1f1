"""One writer per job: a lease file with a heartbeat.

``lease.json`` in the job's home names the holder (session, host, boot id, pid) and its last heartbeat. A run
takes the lease if there is none, if it is stale, or with ``--takeover``. Stale means: its heartbeat is older
than the TTL (the old VM is gone), or it was taken on this very machine (same host and boot) by a process that
no longer exists. The check-and-set runs under an ``flock`` so two runs on one machine cannot both win; across
machines the holder re-reads the lease after writing and at every heartbeat, and stops if it lost it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import LeaseHeldError
from orchestrator.core.paths import JobPaths

log = logging.getLogger(__name__)


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LeaseInfo:
    token: str
    session_id: str
    host: str
    boot_id: str
    pid: int
    acquired: float
    heartbeat: float

    def describe(self, now: float) -> str:
        return (f"session {self.session_id} (host {self.host}, pid {self.pid}, "
                f"last heartbeat {now - self.heartbeat:.0f}s ago)")


def read_lease(path: Path) -> LeaseInfo | None:
    """The lease on file, or None if there is none or it is unreadable (a torn lease protects nothing)."""
    try:
        data = json.loads(path.read_text())
        return LeaseInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def staleness(lease: LeaseInfo, now: float, ttl: float, host: str, this_boot: str,
              alive: Callable[[int], bool] = pid_alive) -> str | None:
    """Why ``lease`` is stale, or None while its holder may still be working."""
    if lease.host == host and lease.boot_id == this_boot and this_boot:
        if lease.pid == os.getpid():
            return None
        if not alive(lease.pid):
            return f"its process {lease.pid} on this machine no longer exists"
        return None
    if lease.host == host and lease.boot_id != this_boot:
        return "this machine rebooted since the lease was taken"
    age = now - lease.heartbeat
    if age > ttl:
        return f"its heartbeat stopped {age:.0f}s ago (TTL {ttl:.0f}s)"
    return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class Lease:
    """A held lease; renew it with ``start_heartbeat`` and give it back with ``release``."""

    def __init__(self, paths: JobPaths, info: LeaseInfo, ttl: float, now: Callable[[], float]) -> None:
        self.paths = paths
        self.info = info
        self.ttl = ttl
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    @classmethod
    def acquire(cls, paths: JobPaths, session_id: str, ttl: float, takeover: bool = False,
                now: Callable[[], float] = time.time) -> tuple[Lease, LeaseInfo | None, str | None]:
        """Take the lease. Returns (lease, previous holder, why the previous one was stale or 'takeover')."""
        host, this_boot = socket.gethostname(), boot_id()
        with _locked(paths.lease_lock):
            previous = read_lease(paths.lease)
            why: str | None = None
            if previous is not None:
                why = staleness(previous, now(), ttl, host, this_boot)
                if why is None and previous.pid == os.getpid() and previous.host == host:
                    why = "held by this process"
                if why is None:
                    if not takeover:
                        raise LeaseHeldError(
                            f"job {paths.home.name!r} is already running: lease held by "
                            f"{previous.describe(now())}. Wait for it, or if that machine is gone run again with "
                            f"--takeover (it is taken over automatically {ttl:.0f}s after its last heartbeat)."
                        )
                    why = "forced with --takeover"
            t = now()
            info = LeaseInfo(token=uuid.uuid4().hex, session_id=session_id, host=host, boot_id=this_boot,
                             pid=os.getpid(), acquired=t, heartbeat=t)
            atomic_write_json(paths.lease, asdict(info))
        return cls(paths, info, ttl, now), previous, why

    def renew(self) -> bool:
        """Write a fresh heartbeat; returns False (and sets ``lost``) if another session took the lease."""
        with _locked(self.paths.lease_lock):
            current = read_lease(self.paths.lease)
            if current is not None and current.token != self.info.token:
                self.lost = f"lease taken over by {current.describe(self._now())}"
                return False
            self.info = LeaseInfo(**{**asdict(self.info), "heartbeat": self._now()})
            atomic_write_json(self.paths.lease, asdict(self.info))
        return True

    def start_heartbeat(self, interval: float) -> None:
        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    if not self.renew():
                        log.error("%s; stopping", self.lost)
                        return
                except OSError as exc:  # a flaky mount must not kill the job; the TTL covers short outages
                    log.warning("lease heartbeat failed: %s", exc)

        self._thread = threading.Thread(target=beat, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with _locked(self.paths.lease_lock):
            current = read_lease(self.paths.lease)
            if current is not None and current.token == self.info.token:
                self.paths.lease.unlink(missing_ok=True)
