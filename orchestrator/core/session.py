"""The session: this machine's run of the job, and its deadline.

Colab and Kaggle VMs are created for the session, so the session's age is the machine's uptime; elsewhere
(a laptop, a spot VM you started long ago) the session starts with this process. The job is asked to stop
``margin`` seconds before ``budget`` runs out.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.core.spec import SessionSpec


def machine_uptime() -> float | None:
    try:
        with open("/proc/uptime") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def on_ephemeral_vm(env: dict[str, str] | None = None) -> bool:
    """True on a notebook VM whose boot is the session's start (Colab, Kaggle)."""
    env = dict(os.environ) if env is None else env
    return any(key in env for key in ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE"))


def session_start(mode: str, now: float, uptime: float | None, ephemeral: bool) -> tuple[float, str]:
    """When this session began, and which clock says so: ``boot`` or ``process``."""
    use_boot = mode == "boot" or (mode == "auto" and ephemeral)
    if use_boot and uptime is not None:
        return now - uptime, "boot"
    return now, "process"


@dataclass
class SessionClock:
    """Deadline arithmetic; ``now`` is injectable so tests use a fake clock."""

    started: float
    budget: float
    margin: float
    source: str = "process"
    now: Callable[[], float] = time.time

    @classmethod
    def for_spec(cls, spec: SessionSpec, now: Callable[[], float] = time.time) -> SessionClock:
        start, source = session_start(spec.clock, now(), machine_uptime(), on_ephemeral_vm())
        return cls(started=start, budget=spec.budget, margin=spec.margin, source=source, now=now)

    @property
    def deadline(self) -> float:
        return self.started + self.budget - self.margin

    def seconds_left(self) -> float:
        return self.deadline - self.now()

    def expired(self) -> bool:
        return self.seconds_left() <= 0


def new_session_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def hostname() -> str:
    return socket.gethostname()
