"""``status``: where a job stands, from its state file, lease and the journal's tail only (fast on slow mounts)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from orchestrator.journal import Journal
from orchestrator.lease import boot_id, read_lease, staleness
from orchestrator.paths import JobPaths
from orchestrator.session import hostname
from orchestrator.state import JobState, StateStore

RECENT_EVENTS = 8
_PROGRESS_FIELDS = {"counter", "total", "unit", "rate_per_second", "eta_seconds", "updated"}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def job_status(paths: JobPaths, lease_ttl: float = 600.0, now: float | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-ready report of the job's state, progress, checkpoint, sessions, lease and last error."""
    now = time.time() if now is None else now
    journal = Journal(paths.journal)
    record = StateStore(paths, journal).load()
    report: dict[str, Any] = {"job": paths.home.name, "home": str(paths.home)}
    if record is None:
        report.update(state=JobState.NEW.value, reason="never run")
        return report
    progress = record.progress
    rate = progress.rate()
    eta = progress.eta_seconds()
    sessions = record.sessions
    run_seconds = sum(((s.ended or now) - s.started) for s in sessions)
    lease = read_lease(paths.lease)
    lease_report = None
    if lease is not None:
        stale = staleness(lease, now, lease_ttl, hostname(), boot_id())
        lease_report = {**asdict(lease), "heartbeat_age": round(now - lease.heartbeat, 1), "stale": stale}
        lease_report.pop("token")
    checkpoint = None
    if record.last_checkpoint is not None:
        checkpoint = {**record.last_checkpoint.model_dump(mode="json"),
                      "age": round(now - record.last_checkpoint.time, 1)}
    report.update(
        kind=record.kind,
        state=record.state.value,
        reason=record.reason,
        updated=record.updated,
        current_step=record.current_step,
        steps_done=sorted(record.steps),
        progress={
            "counter": progress.counter, "total": progress.total, "unit": progress.unit,
            "rate_per_second": rate, "eta_seconds": eta, "updated": progress.updated, **progress.extra,
        },
        latest_checkpoint=checkpoint,
        sessions={
            "count": len(sessions), "total_run_seconds": round(run_seconds, 1),
            "recent": [s.model_dump(mode="json") for s in sessions[-5:]],
        },
        lease=lease_report,
        last_error=record.last_error.model_dump(mode="json") if record.last_error else None,
        restarts=record.restarts,
        recent_events=journal.tail(RECENT_EVENTS),
    )
    if extra:
        report["job_kind"] = extra
    return report


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def format_status(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`job_status`."""
    lines = [f"job {report['job']}  ({report.get('kind', '?')})  {report['home']}"]
    state = report["state"]
    lines.append(f"  state      {state}" + (f" - {report['reason']}" if report.get("reason") else ""))
    if "progress" not in report:
        return "\n".join(lines)
    if report.get("current_step"):
        lines.append(f"  step       {report['current_step']}")
    p = report["progress"]
    if p["counter"] or p["total"]:
        total = f"/{p['total']}" if p["total"] else ""
        pct = f" ({100 * p['counter'] / p['total']:.1f}%)" if p["total"] else ""
        rate = f", {p['rate_per_second']:.3g} {p['unit']}/s" if p["rate_per_second"] else ""
        eta = f", ETA {_duration(p['eta_seconds'])} of running" if p["eta_seconds"] is not None else ""
        lines.append(f"  progress   {p['counter']}{total} {p['unit']}{pct}{rate}{eta}")
    for key, value in p.items():
        if key not in _PROGRESS_FIELDS and value is not None:
            lines.append(f"  {key:<10} {_short(value)}")
    ck = report.get("latest_checkpoint")
    if ck:
        counter = f" @ {ck['counter']}" if ck.get("counter") is not None else ""
        lines.append(f"  checkpoint {ck['name']}{counter}, {_duration(ck['age'])} ago")
    s = report["sessions"]
    lines.append(f"  sessions   {s['count']}, {_duration(s['total_run_seconds'])} in all")
    for sess in s["recent"]:
        end = sess.get("end_reason") or "running"
        length = _duration((sess.get("ended") or time.time()) - sess["started"])
        lines.append(f"    #{sess['index']} {sess['id']} on {sess['host']}: {length}, {end}")
    lease = report.get("lease")
    if lease:
        fresh = f"STALE ({lease['stale']})" if lease.get("stale") else "live"
        lines.append(f"  lease      {fresh}: session {lease['session_id']} on {lease['host']} pid {lease['pid']}, "
                     f"heartbeat {_duration(lease['heartbeat_age'])} ago")
    err = report.get("last_error")
    if err:
        lines.append(f"  last error {err['message']}")
        for tail_line in err.get("log_tail", [])[-5:]:
            lines.append(f"    | {tail_line}")
    for key, value in (report.get("job_kind") or {}).items():
        lines.append(f"  {key:<10} {_short(value)}")
    return "\n".join(lines)
