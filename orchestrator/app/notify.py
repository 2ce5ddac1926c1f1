"""Tell the user a session ended: paused (run the same cell again), failed (why, and the fix) or completed.

The message is a pure function of the job's record (:func:`session_message`); sending goes through apprise
(``notify:`` in the job file: Telegram, Discord, Slack, e-mail, ntfy, json://...). A notification that cannot
be sent is logged and forgotten: it never changes the job's outcome, and a receiver that hangs delays the
end of the session by at most :data:`SEND_TIMEOUT` seconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from orchestrator.core.install import install_hint
from orchestrator.core.logs import get_logger
from orchestrator.core.spec import JobSpecBase
from orchestrator.core.state import JobRecord, JobState

log = get_logger(__name__)

#: Longest wait for all receivers together before the session ends without them.
SEND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    kind: str  # apprise's notify type: info | success | warning | failure


def human_count(value: float) -> str:
    """``1234567`` -> ``1.23M``; small numbers as they are."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if abs(value) >= size:
            scaled = value / (1e3 if suffix == "k" else size)
            return f"{scaled:.3g}{suffix}"
    return f"{value:g}" if value != int(value) else str(int(value))


def progress_sentence(record: JobRecord, spec: JobSpecBase) -> str:
    """``1200/6000 iter done (20%), 4800 left; about 4 more sessions at this pace.``"""
    p = record.progress
    if not p.counter and not p.total:
        return ""
    if p.total is None:
        return f"{human_count(p.counter)} {p.unit} done."
    left = max(0, p.total - p.counter)
    text = f"{human_count(p.counter)}/{human_count(p.total)} {p.unit} done ({100 * p.counter / p.total:.0f}%), " \
           f"{human_count(left)} left"
    rate = p.rate()
    usable = spec.session.budget - spec.session.margin
    if rate and left and usable > 0:
        sessions = math.ceil(left / (rate * usable))
        text += f"; about {sessions} more session{'s' if sessions != 1 else ''} at this pace"
    return text + "."


def session_message(record: JobRecord, spec: JobSpecBase, results: str | None = None) -> Message | None:
    """What to tell the user about the session that just ended (None while active, or stopped at the keyboard:
    the user is there)."""
    job = f"job {spec.name!r}"
    session = record.sessions[-1] if record.sessions else None  # the one that just ended
    where = f" (session {session.index})" if session is not None else ""
    progress = progress_sentence(record, spec)
    if record.state is JobState.PAUSED:
        body = f"{job} paused{where}: {record.reason or 'stopped'}. {progress} Run the same cell again to continue."
        return Message(f"{spec.name}: paused", " ".join(body.split()), "warning")
    if record.state is JobState.FAILED:
        reason = record.reason or (record.last_error.message if record.last_error else "unknown")
        fix = "" if "fix" in reason.lower() else " Fix the cause, then run the cell again with --retry."
        return Message(f"{spec.name}: FAILED", f"{job} failed{where}: {reason}.{fix}", "failure")
    if record.state is JobState.COMPLETED:
        body = f"{job} completed: {record.reason or 'done'}."
        if results:
            body += f" Results: {results}"
        return Message(f"{spec.name}: completed", body, "success")
    return None


def send(urls: list[str], message: Message, timeout: float = SEND_TIMEOUT) -> bool:
    """Send to every URL; False (logged) if apprise is missing or a receiver failed. Never raises."""
    if not urls:
        return True
    try:
        import apprise
    except ImportError:
        log.warning("notify: apprise is not installed, no notification sent; %s", install_hint("notify"))
        return False
    outcome: list[bool] = []

    def deliver() -> None:
        try:
            sender = apprise.Apprise()
            for url in urls:
                if not sender.add(url):
                    log.warning("notify: apprise does not understand the URL %s", _redact(url))
            outcome.append(bool(sender.notify(title=message.title, body=message.body,
                                              notify_type=message.kind)))
        except Exception as exc:  # noqa: BLE001 - a notification must never affect the job
            log.warning("notify: sending failed: %s: %s", type(exc).__name__, exc)

    worker = threading.Thread(target=deliver, name="orchestrator-notify", daemon=True)
    worker.start()
    worker.join(timeout)
    ok = bool(outcome and outcome[0])
    if not ok:
        log.warning("notify: %s not delivered to every receiver (%s)", message.title,
                    "timed out" if worker.is_alive() else "see above")
    return ok


def _redact(url: str) -> str:
    """The scheme and host only: notification URLs carry tokens and passwords."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/..."


def notify_session_end(spec: JobSpecBase, record: JobRecord, results: str | None = None) -> None:
    """The runner's hook: tell ``spec.notify`` how the session ended."""
    if not spec.notify:
        return
    try:
        message = session_message(record, spec, results)
    except Exception as exc:  # noqa: BLE001 - a notification must never affect the job
        log.warning("notify: no message composed: %s: %s", type(exc).__name__, exc)
        return
    if message is not None:
        send(spec.notify, message)
