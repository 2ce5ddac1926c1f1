"""The job state machine: states, the transition table, the persisted record, and ``transition()``.

The record lives in ``<home>/state.json`` wrapped with a sha256 of its body; the previous good copy is kept in
``state.prev.json``. Both writes are atomic. A torn or corrupt state file is detected by its checksum and the
job recovers from the previous copy (journaled); if neither is readable the job refuses to run rather than
silently starting over.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from orchestrator.core.atomic import atomic_write_bytes
from orchestrator.core.errors import StateError
from orchestrator.core.journal import Journal
from orchestrator.core.paths import JobPaths

STATE_FORMAT = "orchestrator-state/1"


class JobState(str, Enum):
    NEW = "new"
    PREPARING = "preparing"
    RUNNING = "running"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"


#: Legal transitions. PAUSED = stopped cleanly (deadline, signal); INTERRUPTED = the session vanished (kill -9,
#: VM gone) and a later run noticed; FAILED leaves only through ``run --retry``, COMPLETED only through
#: ``run --reopen`` (continue with changed settings, e.g. a higher max_batches).
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.NEW: frozenset({JobState.PREPARING}),
    JobState.PREPARING: frozenset({JobState.RUNNING, JobState.PAUSED, JobState.INTERRUPTED, JobState.FAILED}),
    JobState.RUNNING: frozenset({JobState.PAUSED, JobState.INTERRUPTED, JobState.COMPLETED, JobState.FAILED}),
    JobState.PAUSED: frozenset({JobState.PREPARING}),
    JobState.INTERRUPTED: frozenset({JobState.PREPARING}),
    JobState.FAILED: frozenset({JobState.PREPARING}),
    JobState.COMPLETED: frozenset({JobState.PREPARING}),  # only through ``run --reopen``
}

#: States in which a session is (or was, if it vanished) actively working on the job.
ACTIVE_STATES = frozenset({JobState.PREPARING, JobState.RUNNING})


class StepRecord(BaseModel):
    fingerprint: str
    done_at: float


class SessionRecord(BaseModel):
    id: str
    index: int
    host: str
    pid: int
    gpu: str | None = None
    clock: str = ""
    started: float
    ended: float | None = None
    end_reason: str | None = None


class ProgressRecord(BaseModel):
    counter: int = 0
    total: int | None = None
    unit: str = "it"
    updated: float | None = None
    #: counter gained and seconds spent running, summed over sessions: the rate excludes time between sessions
    gained: float = 0.0
    running_seconds: float = 0.0
    extra: dict[str, Any] = Field(default_factory=dict)

    def rate(self) -> float | None:
        return self.gained / self.running_seconds if self.running_seconds > 0 and self.gained > 0 else None

    def eta_seconds(self) -> float | None:
        rate = self.rate()
        if rate is None or self.total is None:
            return None
        return max(0.0, (self.total - self.counter) / rate)


class CheckpointRecord(BaseModel):
    name: str
    counter: int | None = None
    time: float
    extra: dict[str, Any] = Field(default_factory=dict)


class ErrorRecord(BaseModel):
    message: str
    exit_code: int | None = None
    log_tail: list[str] = Field(default_factory=list)
    time: float


class JobRecord(BaseModel):
    """Everything the job knows about itself; small, rewritten atomically on every change."""

    job: str
    kind: str
    state: JobState = JobState.NEW
    reason: str = ""
    seq: int = 0
    updated: float = 0.0
    current_step: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    progress: ProgressRecord = Field(default_factory=ProgressRecord)
    sessions: list[SessionRecord] = Field(default_factory=list)
    last_checkpoint: CheckpointRecord | None = None
    last_error: ErrorRecord | None = None
    restarts: int = 0

    @property
    def current_session(self) -> SessionRecord | None:
        return self.sessions[-1] if self.sessions and self.sessions[-1].ended is None else None


def _encode(record: JobRecord) -> bytes:
    body = record.model_dump(mode="json")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return (json.dumps({"format": STATE_FORMAT, "sha256": digest, "record": body}, indent=1) + "\n").encode()


def decode_state(data: bytes) -> JobRecord:
    """Parse and verify a state file's bytes; raises ValueError naming what is wrong."""
    try:
        wrapper = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(wrapper, dict) or wrapper.get("format") != STATE_FORMAT:
        raise ValueError(f"not an {STATE_FORMAT} file")
    body = wrapper.get("record")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    if hashlib.sha256(canonical.encode()).hexdigest() != wrapper.get("sha256"):
        raise ValueError("checksum mismatch (torn or edited)")
    try:
        return JobRecord.model_validate(body)
    except ValidationError as exc:
        raise ValueError(f"unexpected content ({exc.error_count()} errors)") from None


def check_transition(current: JobState, target: JobState) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final state)"
        raise StateError(f"illegal transition {current.value} -> {target.value}; allowed from {current.value}: {allowed}")


class StateStore:
    """Loads, saves and transitions one job's record."""

    def __init__(self, paths: JobPaths, journal: Journal, now: Any = time.time) -> None:
        self.paths = paths
        self.journal = journal
        self._now = now

    def exists(self) -> bool:
        return self.paths.state.exists() or self.paths.state_prev.exists()

    def load(self) -> JobRecord | None:
        """The newest good record; None for a job that never ran. Recovers from ``state.prev.json``."""
        main_error = self._read_error(self.paths.state)
        if main_error is None:
            return decode_state(self.paths.state.read_bytes())
        prev_error = self._read_error(self.paths.state_prev)
        if prev_error is None:
            record = decode_state(self.paths.state_prev.read_bytes())
            if main_error != "missing":
                self.journal.append("state_recovered", problem=main_error, from_file=self.paths.state_prev.name,
                                    seq=record.seq)
            return record
        if main_error == "missing" and prev_error == "missing":
            if self.paths.journal.exists() and self.paths.journal.stat().st_size > 0:
                raise StateError(
                    f"{self.paths.home}: the job has a journal but no state file; refusing to start over. "
                    f"Restore state.json from a backup, or move the folder away to start the job afresh."
                )
            return None
        raise StateError(
            f"{self.paths.state}: state file unreadable ({main_error}) and its previous copy too ({prev_error}); "
            f"refusing to reset the job. Inspect the files, or move the job folder away to start afresh."
        )

    @staticmethod
    def _read_error(path: Any) -> str | None:
        try:
            decode_state(path.read_bytes())
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            return f"unreadable: {exc}"
        except ValueError as exc:
            return str(exc)
        return None

    def save(self, record: JobRecord) -> JobRecord:
        """Persist atomically, keeping the previous good copy."""
        if self.paths.state.exists() and self._read_error(self.paths.state) is None:
            atomic_write_bytes(self.paths.state_prev, self.paths.state.read_bytes())
        record.seq += 1
        record.updated = self._now()
        atomic_write_bytes(self.paths.state, _encode(record))
        return record

    def transition(self, record: JobRecord, target: JobState, reason: str = "") -> JobRecord:
        """Validate, apply, persist and journal a state change."""
        check_transition(record.state, target)
        previous = record.state
        record.state = target
        record.reason = reason
        if target not in ACTIVE_STATES:
            record.current_step = None
        self.save(record)
        self.journal.append("transition", from_state=previous.value, to_state=target.value, reason=reason)
        return record
