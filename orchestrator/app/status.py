"""``status``: where a job stands, from its state file, lease and the journal's tail only (fast on slow mounts)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.core.journal import Journal
from orchestrator.core.lease import LeaseInfo, boot_id, read_lease, staleness
from orchestrator.core.paths import JobPaths
from orchestrator.core.session import hostname
from orchestrator.core.spec import DEFAULT_LEASE_TTL
from orchestrator.core.state import (
    ACTIVE_STATES,
    CheckpointRecord,
    ErrorRecord,
    JobState,
    SessionRecord,
    StateStore,
)

RECENT_EVENTS = 8


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rate(per_second: float, unit: str) -> str:
    """``2.5 iter/s``, ``42 iter/min`` or ``3.1 iter/h``: the unit that gives a number a person reads."""
    for scale, per in ((1, "s"), (60, "min"), (3600, "h")):
        if per_second * scale >= 1 or per == "h":
            return f"{per_second * scale:.3g} {unit}/{per}"
    return ""


def _extra_line(key: str, value: Any) -> str:
    if key.startswith("hours_") and isinstance(value, (int, float)):  # darknet's "hours left": a duration
        return f"  {key.replace('hours_', 'time_'):<10} {_duration(value * 3600) if value >= 0 else '?'}"
    return f"  {key:<10} {_short(value)}"


@dataclass(frozen=True)
class ProgressReport:
    counter: int
    total: int | None
    unit: str
    rate_per_second: float | None
    eta_seconds: float | None
    updated: float | None
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific figures (loss, hours left, ...)

    def to_dict(self) -> dict[str, Any]:
        return {"counter": self.counter, "total": self.total, "unit": self.unit,
                "rate_per_second": self.rate_per_second, "eta_seconds": self.eta_seconds, "updated": self.updated,
                **self.extra}


@dataclass(frozen=True)
class LeaseReport:
    holder: LeaseInfo
    heartbeat_age: float
    stale: str | None  # why it is stale, or None while live

    def to_dict(self) -> dict[str, Any]:
        holder = asdict(self.holder)
        holder.pop("token")  # the lease's secret: never shown
        return {**holder, "heartbeat_age": self.heartbeat_age, "stale": self.stale}


@dataclass(frozen=True)
class StatusReport:
    """Where a job stands. ``to_dict()`` is exactly what ``status --json`` prints."""

    job: str
    home: str
    state: JobState
    reason: str
    kind: str | None = None
    updated: float | None = None
    current_step: str | None = None
    steps_done: tuple[str, ...] = ()
    progress: ProgressReport | None = None
    latest_checkpoint: CheckpointRecord | None = None
    checkpoint_age: float | None = None
    sessions: tuple[SessionRecord, ...] = ()  # the newest few
    session_count: int = 0
    total_run_seconds: float = 0.0
    lease: LeaseReport | None = None
    last_error: ErrorRecord | None = None
    restarts: int = 0
    recent_events: tuple[dict[str, Any], ...] = ()
    uploads_paused: dict[str, Any] | None = None  # the store refused uploads (daily cap): why, and until when
    job_kind: dict[str, Any] = field(default_factory=dict)

    @property
    def never_run(self) -> bool:
        return self.progress is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job": self.job, "home": self.home}
        if self.never_run:
            out.update(state=self.state.value, reason=self.reason)
            return out
        checkpoint = None
        if self.latest_checkpoint is not None:
            checkpoint = {**self.latest_checkpoint.model_dump(mode="json"), "age": self.checkpoint_age}
        out.update(
            kind=self.kind, state=self.state.value, reason=self.reason, updated=self.updated,
            current_step=self.current_step, steps_done=list(self.steps_done),
            progress=self.progress.to_dict() if self.progress else None,
            latest_checkpoint=checkpoint,
            sessions={"count": self.session_count, "total_run_seconds": self.total_run_seconds,
                      "recent": [s.model_dump(mode="json") for s in self.sessions]},
            lease=self.lease.to_dict() if self.lease else None,
            last_error=self.last_error.model_dump(mode="json") if self.last_error else None,
            restarts=self.restarts, recent_events=list(self.recent_events),
            uploads_paused=self.uploads_paused,
        )
        if self.job_kind:
            out["job_kind"] = self.job_kind
        return out


def _uploads_paused(events: list[dict[str, Any]], state: JobState, now: float) -> dict[str, Any] | None:
    """The newest ``store_paused`` event while its pause lasts and the job is still at work."""
    if state not in ACTIVE_STATES:
        return None
    for event in reversed(events):
        if event.get("event") == "store_paused":
            until = float(event.get("t", 0)) + float(event.get("seconds") or 0)
            return {"reason": event.get("reason", ""), "until": until} if until > now else None
    return None


def job_status(paths: JobPaths, lease_ttl: float = DEFAULT_LEASE_TTL, now: float | None = None,
               extra: dict[str, Any] | None = None) -> StatusReport:
    """The job's state, progress, checkpoint, sessions, lease and last error (reads no big folder)."""
    now = time.time() if now is None else now
    journal = Journal(paths.journal)
    record = StateStore(paths, journal).load()
    if record is None:
        return StatusReport(job=paths.home.name, home=str(paths.home), state=JobState.NEW, reason="never run")
    progress = record.progress
    sessions = record.sessions
    events = journal.tail(RECENT_EVENTS)
    lease = read_lease(paths.lease)
    lease_report = None
    if lease is not None:
        lease_report = LeaseReport(holder=lease, heartbeat_age=round(now - lease.heartbeat, 1),
                                   stale=staleness(lease, now, lease_ttl, hostname(), boot_id()))
    checkpoint = record.last_checkpoint
    return StatusReport(
        job=paths.home.name, home=str(paths.home), state=record.state, reason=record.reason, kind=record.kind,
        updated=record.updated, current_step=record.current_step, steps_done=tuple(sorted(record.steps)),
        progress=ProgressReport(counter=progress.counter, total=progress.total, unit=progress.unit,
                                rate_per_second=progress.rate(), eta_seconds=progress.eta_seconds(),
                                updated=progress.updated, extra=dict(progress.extra)),
        latest_checkpoint=checkpoint,
        checkpoint_age=round(now - checkpoint.time, 1) if checkpoint is not None else None,
        sessions=tuple(sessions[-5:]), session_count=len(sessions),
        total_run_seconds=round(sum(((s.ended or now) - s.started) for s in sessions), 1),
        lease=lease_report, last_error=record.last_error, restarts=record.restarts,
        recent_events=tuple(events), job_kind=dict(extra or {}),
        uploads_paused=_uploads_paused(events, record.state, now),
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def format_status(report: StatusReport) -> str:
    """The human-readable form of :func:`job_status`."""
    lines = [f"job {report.job}  ({report.kind or '?'})  {report.home}"]
    lines.append(f"  state      {report.state.value}" + (f" - {report.reason}" if report.reason else ""))
    p = report.progress
    if p is None:
        return "\n".join(lines)
    if report.current_step:
        lines.append(f"  step       {report.current_step}")
    if p.counter or p.total:
        total = f"/{p.total}" if p.total else ""
        pct = f" ({100 * p.counter / p.total:.1f}%)" if p.total else ""
        rate = f", {_rate(p.rate_per_second, p.unit)}" if p.rate_per_second else ""
        eta_known = p.eta_seconds is not None and report.state not in (JobState.FAILED, JobState.COMPLETED)
        eta = f", ETA {_duration(p.eta_seconds)} of running" if eta_known else ""
        lines.append(f"  progress   {p.counter}{total} {p.unit}{pct}{rate}{eta}")
    for key, value in p.extra.items():
        if value is not None and not (key.startswith("hours_") and report.state in (JobState.FAILED,
                                                                                    JobState.COMPLETED)):
            lines.append(_extra_line(key, value))
    if report.uploads_paused:
        paused = report.uploads_paused
        lines.append(f"  uploads    paused: {paused['reason']}; next try in "
                     f"{_duration(paused['until'] - time.time())}, the job works on meanwhile")
    ck = report.latest_checkpoint
    if ck is not None:
        counter = f" @ {ck.counter}" if ck.counter is not None else ""
        lines.append(f"  checkpoint {ck.name}{counter}, {_duration(report.checkpoint_age)} ago")
    lines.append(f"  sessions   {report.session_count}, {_duration(report.total_run_seconds)} in all")
    for sess in report.sessions:
        length = _duration((sess.ended or time.time()) - sess.started)
        lines.append(f"    #{sess.index} {sess.id} on {sess.host}: {length}, {sess.end_reason or 'running'}")
    lease = report.lease
    if lease is not None:
        fresh = f"STALE ({lease.stale})" if lease.stale else "live"
        holder = lease.holder
        lines.append(f"  lease      {fresh}: session {holder.session_id} on {holder.host} pid {holder.pid}, "
                     f"heartbeat {_duration(lease.heartbeat_age)} ago")
    err = report.last_error
    if err is not None:
        lines.append(f"  last error {err.message}")
        for tail_line in err.log_tail[-5:]:
            lines.append(f"    | {tail_line}")
    for key, value in report.job_kind.items():
        lines.append(f"  {key:<10} {_short(value)}")
    return "\n".join(lines)
