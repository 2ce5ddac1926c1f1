"""``run``: one session of a job, from lease to release.

    load record -> same kind? inputs and changes usable? (exit 2, home untouched) -> refuse if completed (and its
    result is still there) or failed -> take lease -> identity (job id; a lost state file rebuilt) -> sweep our
    temp files -> note an interrupted predecessor -> session start
    -> preparing: idempotent steps (skipped while their fingerprint is unchanged and outputs present)
    -> running: JobKind.run, restarted with backoff on crashes up to ``restart.max_restarts``
    -> completed | paused(deadline|signal|storage fault|lease-lost) | failed(reason) -> session end -> release

Every state write and checkpoint publish first checks the lease (one writer after a ``--takeover``). A file-system
fault (read-only, full, I/O error, a vanished folder) ends the session with one line naming the path and the fix
and exit 75; the state is left resumable.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jobs.base import Completed, Crashed, JobKind, RunOutcome, Stopped
from jobs.registry import load_job_kind
from orchestrator.app.notify import notify_session_end
from orchestrator.core.atomic import atomic_write_bytes, atomic_write_json, is_temp_name
from orchestrator.core.context import RunContext
from orchestrator.core.drive_flush import flush_drive
from orchestrator.core.errors import (
    ConfigError,
    LeaseLostError,
    OrchestratorError,
    StateError,
    StorageError,
    storage_error,
)
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
    new_job_id,
    read_record,
)

log = logging.getLogger(__name__)

EXIT_COMPLETED = 0
EXIT_PAUSED = 75  # EX_TEMPFAIL: run the same command again to continue
#: how often (seconds) the job's stop polls re-read the lease file to notice a takeover between heartbeats
LEASE_POLL_SECONDS = 1.0
#: bytes kept free in the job's home (``.space-reserve``) for the last state write when its disk fills up
SPACE_RESERVE_BYTES = 32 * 1024


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
        if self.reason == "lease-lost":
            return LeaseLostError.exit_code
        return EXIT_PAUSED


def check_job_home(paths: JobPaths) -> None:
    """The job's home can be made: never a checkpoint_dir whose parent is missing (e.g. Drive not mounted)."""
    checkpoint_dir = paths.home.parent
    if not checkpoint_dir.exists() and not checkpoint_dir.parent.exists():
        hint = ""
        if str(checkpoint_dir).startswith("/content/drive"):
            hint = " Is Google Drive mounted? In Colab: from google.colab import drive; drive.mount('/content/drive')"
        raise ConfigError(f"checkpoint_dir: {checkpoint_dir} does not exist and neither does its parent.{hint}")


def ensure_job_home(paths: JobPaths) -> None:
    """Create the job's home (see :func:`check_job_home`)."""
    check_job_home(paths)
    try:
        paths.home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, "creating the job folder") from None


@contextmanager
def stop_on_signals(ctx: RunContext) -> Iterator[None]:
    """SIGINT/SIGTERM ask the job to checkpoint and stop; a second SIGINT interrupts at once."""
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        if ctx.stop_requested() == "signal" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        ctx.request_stop("signal")
        if signum == signal.SIGINT:
            print("stopping cleanly after the next checkpoint; press Ctrl-C again to stop at once", file=sys.stderr,
                  flush=True)

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
        #: commits the Drive mount's uploads at a clean end (None: google.colab's, on Colab)
        self.drive_flusher: Callable[[int], None] | None = None
        self.journal = Journal(self.paths.journal, now=now)
        self.states = StateStore(self.paths, self.journal, now=now)

    def run(self, takeover: bool = False, retry: bool = False, handle_signals: bool = True,
            reopen: bool = False, new_lineage: bool = False) -> RunResult:
        """One session. ``retry`` resumes a failed job; ``reopen`` continues a completed one (e.g. after raising
        max_batches in the job file); ``new_lineage`` starts a new line of checkpoints after a change the old
        ones cannot follow (they are moved aside into ``previous-lineages/``, never deleted)."""
        kind_cls = self.kind_factory(self.spec.kind)  # fail on a missing extra before touching anything
        record, kind = self.preflight(new_lineage)  # bad input: exit 2 with nothing written
        ensure_job_home(self.paths)
        try:
            result = self._run(kind_cls, record, kind, takeover, retry, handle_signals, reopen, new_lineage)
        except OSError as exc:  # the home itself failed (read-only, full, gone): the state stays as it was
            raise storage_error(exc) from None
        if result.state is JobState.COMPLETED or result.reason in ("deadline", "signal"):
            flush_drive(self.paths.home, self.spec.session.flush_drive, flusher=self.drive_flusher)
        return result

    def preflight(self, new_lineage: bool = False) -> tuple[JobRecord | None, JobKind]:
        """Checks that write nothing: the kind matches the home, inputs exist, changes are usable."""
        kind_cls = self.kind_factory(self.spec.kind)
        check_job_home(self.paths)
        try:
            record = read_record(self.paths)
        except OSError as exc:
            raise storage_error(exc) from None
        self._check_identity(record)
        kind: JobKind = kind_cls(self.spec, JobPaths.for_spec(self.spec, record.job_id if record else None))
        kind.check_inputs(None if new_lineage else self._previous_spec())
        return record, kind

    def _run(self, kind_cls: type, record: JobRecord | None, kind: JobKind, takeover: bool, retry: bool,
             handle_signals: bool, reopen: bool, new_lineage: bool) -> RunResult:
        self.states.load()  # recovers a torn state file from its previous copy (journaled)
        reopen = reopen or self._result_gone(record, kind)
        early = self._refuse_or_none(record, retry, reopen or new_lineage)
        if early is not None:
            return early
        session_id = new_session_id()
        lease, previous, why = Lease.acquire(self.paths, session_id, self.spec.session.lease_ttl, takeover,
                                             now=self.now)
        try:
            self.states.guard = self.journal.guard = lease.check_held
            record = self.states.load()
            record = self._identity(record)
            if new_lineage:
                record = self._start_new_lineage(record)
            early = self._refuse_or_none(record, retry, reopen or new_lineage)
            if early is not None:
                return early
            self.paths = JobPaths.for_spec(self.spec, record.job_id)
            self._sweep_temp_files()
            self._reserve_space()
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
        except LeaseLostError as exc:
            log.error("%s", exc)
            return RunResult(JobState.PAUSED, "lease-lost")
        finally:
            self.states.guard = self.journal.guard = None
            try:
                lease.release()
            except OSError as exc:
                log.warning("could not release the lease (%s); it expires after its TTL", exc.strerror or exc)

    # --- identity and changes ----------------------------------------------------------------------------
    def _previous_spec(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.paths.spec_copy.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _check_identity(self, record: JobRecord | None) -> None:
        """A job file of another kind over an existing home: refuse before anything is written."""
        kinds = []
        if record is not None:
            kinds.append(record.kind)
        else:
            previous = self._previous_spec()
            if previous is not None and isinstance(previous.get("kind"), str):
                kinds.append(previous["kind"])
            journaled = self.states.journaled_identity()
            if journaled is not None and journaled[1]:
                kinds.append(journaled[1])
        other = next((k for k in kinds if k != self.spec.kind), None)
        if other is not None:
            raise ConfigError(
                f"{self.paths.home}: this folder holds a {other!r} job, but the job file says kind: "
                f"{self.spec.kind!r}. Nothing was changed. Give the job another name (or checkpoint_dir) for the "
                f"{self.spec.kind!r} job, or restore kind: {other} in the job file"
            )

    def _identity(self, record: JobRecord | None) -> JobRecord:
        """The record with its job id; creates the record of a new job, or rebuilds one whose state was lost."""
        if record is None:
            journaled = self.states.journaled_identity()
            job_id = journaled[0] if journaled is not None else new_job_id()
            record = self.states.save(JobRecord(job=self.spec.name, kind=self.spec.kind, job_id=job_id))
            if self.states.lost_state:
                log.warning("%s; rebuilt the job's record: it resumes from the newest valid checkpoint",
                            self.states.lost_state)
                self.journal.append("state_rebuilt", problem=self.states.lost_state, job_id=job_id)
            else:
                self.journal.append("job_created", job_id=job_id, kind=self.spec.kind)
        elif not record.job_id:  # a home from before job identities
            record.job_id = new_job_id()
            self.states.save(record)
            self.journal.append("job_created", job_id=record.job_id, kind=record.kind, upgraded=True)
        return record

    def _result_gone(self, record: JobRecord | None, kind: JobKind) -> bool:
        """A job recorded completed whose final result is no longer in the store continues (and says so)."""
        if record is None or record.state is not JobState.COMPLETED:
            return False
        missing = kind.result_missing(record)
        if missing is None:
            return False
        log.warning("job %s is recorded as completed, but %s; continuing it from the newest valid checkpoint",
                    self.spec.name, missing)
        return True

    def _start_new_lineage(self, record: JobRecord) -> JobRecord:
        """Move the store aside (kept, never retained away) and start the job's checkpoints afresh."""
        store = self.paths.store_root
        if store.exists():
            target = self.paths.lineages / f"lineage-{record.lineage:03d}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(store, target)
            log.info("new lineage: the earlier checkpoints were moved to %s", target)
        old_id = record.job_id
        # a reset, not a transition: the new line starts where a paused job would (an active one is closed next)
        state = JobState.PAUSED if record.state in (JobState.COMPLETED, JobState.FAILED) else record.state
        fresh = JobRecord(job=record.job, kind=record.kind, job_id=new_job_id(), lineage=record.lineage + 1,
                          state=state, reason="new lineage", sessions=record.sessions, seq=record.seq)
        self.states.save(fresh)
        self.journal.append("new_lineage", lineage=fresh.lineage, previous_job_id=old_id, job_id=fresh.job_id)
        self.journal.append("job_created", job_id=fresh.job_id, kind=fresh.kind, lineage=fresh.lineage)
        return fresh

    def _reserve_space(self) -> None:
        """A small file of zeros in the home, deleted when the disk fills up so the state can still say so."""
        if self.paths.space_reserve.exists():
            return
        try:
            atomic_write_bytes(self.paths.space_reserve, bytes(SPACE_RESERVE_BYTES))
        except OSError as exc:
            self.paths.space_reserve.unlink(missing_ok=True)
            raise storage_error(exc, "at session start") from None

    def _sweep_temp_files(self) -> None:
        """Our own temp files in the home whose rename never happened (or never reached the mount's remote)."""
        swept = 0
        for folder in (self.paths.home, self.paths.logs):
            try:
                names = [n for n in os.listdir(folder) if is_temp_name(n)]
            except OSError:
                continue
            for name in names:
                try:
                    os.unlink(folder / name)
                    swept += 1
                except OSError:
                    pass
        if swept:
            log.info("removed %d leftover temp file(s) from %s", swept, self.paths.home)

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
                         lease_lost=_lease_poller(lease), now=self.now, guard=lease.check_held)
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
                log.warning("no GPU: running on CPU — in Colab choose Runtime > Change runtime type > GPU")
            try:
                self.states.transition(record, JobState.PREPARING, "reopened" if record.state is JobState.COMPLETED
                                       else "session start")
                outcome = self._prepare(kind, ctx, record)
                if outcome is None:
                    self.states.transition(record, JobState.RUNNING, "")
                    outcome = self._run_with_restarts(kind, ctx, record)
                result = self._finish(record, outcome)
            except LeaseLostError:
                raise  # write nothing more: the other session owns the job now
            except (OSError, StorageError) as exc:
                error = storage_error(exc) if isinstance(exc, OSError) else exc
                self._pause_quietly(record, session, str(error))
                raise error from None
            except OrchestratorError as exc:
                self._fail(record, str(exc))
                self._end_session(record, session, "failed")
                raise
            except KeyboardInterrupt:
                if record.state in ACTIVE_STATES:
                    self.states.transition(record, JobState.INTERRUPTED, "stopped at once by a second Ctrl-C")
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

    def _pause_quietly(self, record: JobRecord, session: SessionRecord, message: str) -> None:
        """After a storage fault: leave the job paused (resumable) if the home can still be written at all."""
        self.paths.space_reserve.unlink(missing_ok=True)  # a full disk: this space is for the last state write
        try:
            record.last_error = ErrorRecord(message=message, time=self.now())
            if record.state in ACTIVE_STATES:
                self.states.transition(record, JobState.PAUSED, "storage fault")
            self._end_session(record, session, "storage fault")
        except (OSError, StorageError):
            log.warning("the job's state could not be updated (%s); the next run notices the stopped session "
                        "and resumes", self.paths.home)

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
                if outcome.reason == "deadline":
                    log.warning("this session saved no new checkpoint: its work is lost. If that repeats, the "
                                "session budget is too short to reach the next checkpoint; save more often or raise "
                                "the budget")
                else:
                    log.warning("stopped (%s) before this session saved a checkpoint: its work since the last "
                                "checkpoint is lost", outcome.reason)
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


def _lease_poller(lease: Lease) -> Callable[[], str | None]:
    """``ctx``'s lease check: the heartbeat's verdict, plus a fresh read of the lease at most every second."""
    last = [0.0]

    def lost() -> str | None:
        if lease.lost is None and time.monotonic() - last[0] >= LEASE_POLL_SECONDS:
            last[0] = time.monotonic()
            try:
                lease.check_held()
            except LeaseLostError:
                pass
            except OSError:
                pass
        return lease.lost

    return lost


@contextmanager
def _nothing() -> Iterator[None]:
    yield
