"""``run``: one session of a job, from lease to release.

    load record -> refuse if completed/failed -> take lease -> note an interrupted predecessor -> session start
    -> preparing: idempotent steps (skipped while their fingerprint is unchanged and outputs present)
    -> running: JobKind.run, restarted with backoff on crashes up to ``restart.max_restarts``
    -> completed | paused(deadline|signal) | failed(reason) -> session end -> release lease
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jobs.base import Completed, Crashed, JobKind, RunOutcome, Stopped
from jobs.registry import load_job_kind
from orchestrator.app.notify import notify_session_end
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.context import RunContext
from orchestrator.core.errors import ConfigError, OrchestratorError, StateError
from orchestrator.core.gpu import detect_gpus
from orchestrator.core.journal import Journal
from orchestrator.core.lease import Lease, LeaseInfo
from orchestrator.core.logs import session_log
from orchestrator.core.paths import JobPaths
from orchestrator.core.session import SessionClock, hostname, new_session_id
from orchestrator.core.spec import JobSpecBase
from orchestrator.core.state import (
    ACTIVE_STATES,
    ErrorRecord,
    JobRecord,
    JobState,
    SessionRecord,
    StateStore,
    StepRecord,
)

log = logging.getLogger(__name__)

EXIT_COMPLETED = 0
EXIT_PAUSED = 75  # EX_TEMPFAIL: run the same command again to continue


@dataclass(frozen=True)
class RunResult:
    state: JobState
    reason: str

    @property
    def exit_code(self) -> int:
        if self.state is JobState.COMPLETED:
            return EXIT_COMPLETED
        if self.state is JobState.FAILED:
            return StateError.exit_code
        return EXIT_PAUSED


def ensure_job_home(paths: JobPaths) -> None:
    """Create the job's home, but never a checkpoint_dir whose parent is missing (e.g. Drive not mounted)."""
    checkpoint_dir = paths.home.parent
    if not checkpoint_dir.exists() and not checkpoint_dir.parent.exists():
        hint = ""
        if str(checkpoint_dir).startswith("/content/drive"):
            hint = " Is Google Drive mounted? In Colab: from google.colab import drive; drive.mount('/content/drive')"
        raise ConfigError(f"checkpoint_dir: {checkpoint_dir} does not exist and neither does its parent.{hint}")
    paths.home.mkdir(parents=True, exist_ok=True)


@contextmanager
def stop_on_signals(ctx: RunContext) -> Iterator[None]:
    """SIGINT/SIGTERM ask the job to checkpoint and stop; a second SIGINT interrupts at once."""
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if ctx.stop_requested() == "signal" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        ctx.request_stop("signal")

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class JobRunner:
    """Runs one session of one job."""

    def __init__(self, spec: JobSpecBase, now: Callable[[], float] = time.time,
                 kind_factory: Callable[[str], type] = load_job_kind) -> None:
        self.spec = spec
        self.paths = JobPaths.for_spec(spec)
        self.now = now
        self.kind_factory = kind_factory
        self.journal = Journal(self.paths.journal, now=now)
        self.states = StateStore(self.paths, self.journal, now=now)

    def run(self, takeover: bool = False, retry: bool = False, handle_signals: bool = True,
            reopen: bool = False) -> RunResult:
        """One session. ``retry`` resumes a failed job; ``reopen`` continues a completed one (e.g. after raising
        max_batches in the job file)."""
        kind_cls = self.kind_factory(self.spec.kind)  # fail on a missing extra before touching anything
        ensure_job_home(self.paths)
        record = self.states.load()
        early = self._refuse_or_none(record, retry, reopen)
        if early is not None:
            return early
        session_id = new_session_id()
        lease, previous, why = Lease.acquire(self.paths, session_id, self.spec.session.lease_ttl, takeover,
                                             now=self.now)
        try:
            record = self.states.load()
            if record is None:  # state first: the journal never holds events of a job without a state file
                record = self.states.save(JobRecord(job=self.spec.name, kind=self.spec.kind))
            early = self._refuse_or_none(record, retry, reopen)
            if early is not None:
                return early
            if previous is not None and why:
                self.journal.append("lease_takeover", previous_session=previous.session_id,
                                    previous_host=previous.host, previous_pid=previous.pid, why=why)
            self._close_vanished_session(record, previous, why)
            self._write_spec_copy()
            lease.start_heartbeat(self.spec.session.heartbeat)
            try:
                return self._session(record, kind_cls(self.spec, self.paths), session_id, lease, retry,
                                     handle_signals)
            finally:  # failed sessions too; never raises
                results = self.paths.results
                notify_session_end(self.spec, record, str(results) if results.is_dir() else None)
        finally:
            lease.release()

    # --- before the session ------------------------------------------------------------------------------
    def _refuse_or_none(self, record: JobRecord | None, retry: bool, reopen: bool = False) -> RunResult | None:
        if record is None:
            return None
        if record.state is JobState.COMPLETED and not reopen:
            log.info("job %s is already completed (%s); nothing to do. To continue it with changed settings "
                     "(e.g. a higher max_batches), run again with --reopen", self.spec.name, record.reason or "done")
            return RunResult(JobState.COMPLETED, record.reason)
        if record.state is JobState.FAILED and not retry:
            tail = ""
            if record.last_error and record.last_error.log_tail:
                tail = "\nlast log lines:\n  " + "\n  ".join(record.last_error.log_tail[-10:])
            raise StateError(f"job {self.spec.name!r} failed: {record.reason}{tail}\n"
                             f"Fix the cause, then run again with --retry to resume from the last checkpoint.")
        return None

    def _close_vanished_session(self, record: JobRecord, previous: LeaseInfo | None, why: str | None) -> None:
        """A record still 'preparing'/'running' means its session died without a clean stop (kill -9, VM gone)."""
        if record.state not in ACTIVE_STATES:
            return
        session = record.current_session
        lost_at = max(previous.heartbeat, record.updated) if previous is not None else record.updated
        reason = f"session {session.id if session else '?'} vanished without a clean stop"
        if why:
            reason += f" ({why})"
        if session is not None:
            session.ended, session.end_reason = lost_at, "vanished"
            self.journal.append("session_end", session=session.id, end_reason="vanished", detected_by="next run")
        self.states.transition(record, JobState.INTERRUPTED, reason)
        log.warning("resuming after an interruption: %s", reason)

    def _write_spec_copy(self) -> None:
        data = self.spec.model_dump(mode="json", exclude={"notify"})  # notification URLs carry tokens
        try:
            if json.loads(self.paths.spec_copy.read_text()) == data:
                return
        except (OSError, ValueError):
            pass
        atomic_write_json(self.paths.spec_copy, data)

    # --- the session -------------------------------------------------------------------------------------
    def _session(self, record: JobRecord, kind: JobKind, session_id: str, lease: Lease, retry: bool,
                 handle_signals: bool) -> RunResult:
        clock = SessionClock.for_spec(self.spec.session, now=self.now)
        index = len(record.sessions) + 1
        session = SessionRecord(id=session_id, index=index, host=hostname(), pid=os.getpid(), gpu=detect_gpus().describe(),
                                clock=clock.source, started=self.now())
        record.sessions.append(session)
        if retry and record.state is JobState.FAILED:
            record.restarts = 0
        ctx = RunContext(self.spec, self.paths, record, self.states, self.journal, clock, session_id, index,
                         lease_lost=lambda: lease.lost, now=self.now)
        log_path = self.paths.session_log(index, session_id)
        with session_log(log_path), (stop_on_signals(ctx) if handle_signals else _nothing()):
            self.journal.append("session_start", session=session_id, index=index, host=session.host,
                                pid=session.pid, gpu=session.gpu, clock=clock.source,
                                deadline=round(clock.deadline, 3), log=str(log_path.relative_to(self.paths.home)))
            log.info("job %s: session %d (%s) on %s; stop planned in %.0fs (%s clock)", self.spec.name, index,
                     session_id, session.host, clock.seconds_left(), clock.source)
            if session.gpu:
                log.info("device: GPU %s", session.gpu)
            else:
                log.warning("no GPU: training on CPU — in Colab choose Runtime > Change runtime type > GPU")
            try:
                self.states.transition(record, JobState.PREPARING, "reopened" if record.state is JobState.COMPLETED
                                       else "session start")
                outcome = self._prepare(kind, ctx, record)
                if outcome is None:
                    self.states.transition(record, JobState.RUNNING, "")
                    outcome = self._run_with_restarts(kind, ctx, record)
                result = self._finish(record, outcome)
            except OrchestratorError as exc:
                self._fail(record, str(exc))
                self._end_session(record, session, "failed")
                raise
            except KeyboardInterrupt:
                if record.state in ACTIVE_STATES:
                    self.states.transition(record, JobState.INTERRUPTED, "interrupted from the keyboard")
                self._end_session(record, session, "keyboard interrupt")
                raise
            except BaseException as exc:
                self._fail(record, f"internal error: {type(exc).__name__}: {exc}")
                self._end_session(record, session, "error")
                raise
            finally:
                ctx.display.close()
            self._end_session(record, session, result.state.value if result.state is not JobState.PAUSED
                              else result.reason)
            return result

    def _prepare(self, kind: JobKind, ctx: RunContext, record: JobRecord) -> RunOutcome | None:
        for step in kind.steps(ctx):
            reason = ctx.stop_requested()
            if reason:
                return Stopped(reason)
            done = record.steps.get(step.name)
            if done is not None and done.fingerprint == step.fingerprint and step.outputs_present():
                self.journal.append("step_skipped", step=step.name, fingerprint=step.fingerprint)
                log.info("step %s: up to date, skipped", step.name)
                continue
            record.current_step = step.name
            ctx.persist()
            log.info("step %s: running%s", step.name, f" ({step.description})" if step.description else "")
            started = self.now()
            step.action(ctx)
            record.steps[step.name] = StepRecord(fingerprint=step.fingerprint, done_at=self.now())
            record.current_step = None
            ctx.persist()
            self.journal.append("step_done", step=step.name, fingerprint=step.fingerprint,
                                seconds=round(self.now() - started, 3))
        return None

    def _run_with_restarts(self, kind: JobKind, ctx: RunContext, record: JobRecord) -> RunOutcome:
        policy = self.spec.restart
        while True:
            outcome = kind.run(ctx)
            if not isinstance(outcome, Crashed):
                return outcome
            record.restarts += 1
            record.last_error = ErrorRecord(message=outcome.reason, exit_code=outcome.exit_code,
                                            log_tail=outcome.log_tail[-20:], time=self.now())
            ctx.persist()
            self.journal.append("crash", session=ctx.session_id, reason=outcome.reason,
                                exit_code=outcome.exit_code, restarts=record.restarts,
                                log_tail=outcome.log_tail[-20:])
            if record.restarts > policy.max_restarts:
                return outcome
            delay = min(policy.backoff * 2 ** (record.restarts - 1), policy.backoff_max)
            log.warning("job crashed (%s); restart %d/%d in %.0fs; last output:\n  %s", outcome.reason,
                        record.restarts, policy.max_restarts, delay, "\n  ".join(outcome.log_tail[-5:]))
            stop = ctx.wait(delay)
            if stop:
                return Stopped(stop)

    def _finish(self, record: JobRecord, outcome: RunOutcome) -> RunResult:
        self._clear_old_error(record, outcome)
        if isinstance(outcome, Completed):
            self.states.transition(record, JobState.COMPLETED, outcome.summary or "done")
            log.info("job %s completed", self.spec.name)
            return RunResult(JobState.COMPLETED, outcome.summary)
        if isinstance(outcome, Stopped):
            session = record.current_session
            ran = record.state is JobState.RUNNING  # a session stopped while preparing did no job work to lose
            if ran and session is not None and (record.last_checkpoint is None
                                                or record.last_checkpoint.time < session.started):
                log.warning("this session saved no new checkpoint: its work is lost. If that repeats, the session "
                            "budget is too short to reach the next checkpoint; save more often or raise the budget")
                self.journal.append("no_checkpoint_this_session", session=session.id)
            self.states.transition(record, JobState.PAUSED, outcome.reason)
            log.info("job %s paused (%s); run the same command again to continue", self.spec.name, outcome.reason)
            return RunResult(JobState.PAUSED, outcome.reason)
        reason = (f"crashed {record.restarts} times (max_restarts={self.spec.restart.max_restarts}); "
                  f"last: {outcome.reason}")
        self.states.transition(record, JobState.FAILED, reason)
        log.error("job %s failed: %s", self.spec.name, reason)
        return RunResult(JobState.FAILED, reason)

    def _clear_old_error(self, record: JobRecord, outcome: RunOutcome) -> None:
        """An error of an earlier session stops being "the last error" once a later session ran fine (it
        completed, or saved a checkpoint); the journal keeps it in the job's history."""
        session, error = record.current_session, record.last_error
        if session is None or error is None or error.time >= session.started or isinstance(outcome, Crashed):
            return
        saved = record.last_checkpoint is not None and record.last_checkpoint.time >= session.started
        if isinstance(outcome, Completed) or saved:
            self.journal.append("error_cleared", session=session.id, message=error.message, error_time=error.time)
            record.last_error = None

    def _fail(self, record: JobRecord, message: str) -> None:
        record.last_error = ErrorRecord(message=message, time=self.now())
        self.journal.append("error", message=message)
        if record.state in ACTIVE_STATES:
            self.states.transition(record, JobState.FAILED, message)
        else:
            self.states.save(record)

    def _end_session(self, record: JobRecord, session: SessionRecord, reason: str) -> None:
        session.ended, session.end_reason = self.now(), reason
        self.states.save(record)
        self.journal.append("session_end", session=session.id, end_reason=reason,
                            seconds=round(session.ended - session.started, 3))


@contextmanager
def _nothing() -> Iterator[None]:
    yield
