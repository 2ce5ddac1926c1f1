"""The protocol every job kind implements, and the plain values it returns.

A job kind is a class registered in ``jobs.registry`` under its ``kind:`` name. The runner
(``orchestrator.app.runner``) owns the lease, the state machine, deadlines, restarts and the journal; the job kind
only says which idempotent preparation steps it needs and how to run (and resume) the work:

    check_inputs(previous) -> None  before anything is built or written: every path the job reads exists, and
                                    a change from the spec the home last ran with (``previous``) is usable;
                                    raises ConfigError naming the field/file (exit 2, home untouched)
    steps(ctx)  -> list[Step]       run once each, skipped on a re-run while their fingerprint is unchanged
    run(ctx)    -> RunOutcome       do the work from wherever it stopped; poll ctx.stop_requested()
    result_missing(record) -> str   for a job recorded completed: what of its final result is gone, or None
    status_extra(paths) -> dict     cheap extra facts for `orchestrator status` (never walk big folders)

``run`` returns a decision as a value (Completed / Stopped / Crashed); it raises OrchestratorError
subclasses only for problems a restart cannot fix (bad weights, bad dataset): those fail the job at once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.core.paths import JobPaths
from orchestrator.core.spec import JobSpecBase

if TYPE_CHECKING:
    from checkpoints.job_checkpoints import JobCheckpoints
    from orchestrator.core.state import JobRecord


@dataclass(frozen=True)
class Completed:
    """The job's work is finished."""

    summary: str = ""


@dataclass(frozen=True)
class Stopped:
    """The job checkpointed and stopped on request; ``reason`` is what ``ctx.stop_requested()`` returned."""

    reason: str


@dataclass(frozen=True)
class Crashed:
    """The job's process died; the runner may restart it with backoff."""

    reason: str
    exit_code: int | None = None
    log_tail: list[str] = field(default_factory=list)


RunOutcome = Completed | Stopped | Crashed


@dataclass
class Step:
    """An idempotent preparation step.

    Skipped when the journaled fingerprint equals ``fingerprint`` and ``outputs_present()`` is true (local
    outputs vanish with the machine, so a step whose outputs are gone runs again).
    """

    name: str
    fingerprint: str
    action: Callable[[JobContext], None]
    outputs_present: Callable[[], bool] = lambda: True
    description: str = ""


class JobContext(Protocol):
    """What the runner hands a job kind. Implemented by ``orchestrator.core.context.RunContext``."""

    spec: JobSpecBase
    paths: JobPaths
    session_id: str
    session_index: int  # 1, 2, ... as `status` numbers sessions
    log: logging.Logger

    def stop_requested(self) -> str | None:
        """``"deadline"`` or ``"signal"`` once the job should checkpoint and stop, else None."""

    def seconds_left(self) -> float:
        """Seconds until the runner asks the job to stop for the session deadline."""

    def report_progress(self, counter: int, total: int | None = None, unit: str = "it", **extra: Any) -> None:
        """Record progress (cheap to call often: persisted at most every few seconds)."""

    def report_checkpoint(self, name: str, counter: int | None = None, **extra: Any) -> None:
        """Record that a checkpoint was saved durably."""

    def record_event(self, event: str, **fields: Any) -> None:
        """Append an event to the job's journal."""

    def show(self, line: str) -> None:
        """Print a line of the job's own output to the console, below the progress bar."""

    def process_log(self, what: str) -> Path:
        """Path of this session's log file for a child process (e.g. ``"darknet"``)."""

    def check_writer(self) -> None:
        """Raise LeaseLostError once another session took the job over (call before publishing)."""

    def storage_fault(self, message: str) -> None:
        """Report a storage fault retrying cannot fix: the session stops, the job stays resumable."""


class JobKind(ABC):
    """Base class of job kinds."""

    def __init__(self, spec: JobSpecBase, paths: JobPaths) -> None:
        self.spec = spec
        self.paths = paths

    def check_inputs(self, previous: dict[str, Any] | None = None) -> None:
        """Raise ConfigError for a missing input or a change the existing checkpoints cannot follow."""

    def steps(self, ctx: JobContext) -> list[Step]:
        return []

    def result_missing(self, record: JobRecord) -> str | None:
        """For a job recorded ``completed``: a sentence saying which durable result is gone, else None."""
        return None

    @abstractmethod
    def run(self, ctx: JobContext) -> RunOutcome:
        """Do (or resume) the work until done, stopped or crashed."""

    def status_extra(self) -> dict[str, Any]:
        return {}

    def plan(self) -> dict[str, Any]:
        """What this job file will run, where that differs from what it says (shown by ``validate``)."""
        return {}

    def checkpoints(self, session_id: str = "") -> JobCheckpoints | None:
        """The job's checkpoint machinery (store, manifest, discovery), or None if it keeps no checkpoints."""
        return None
