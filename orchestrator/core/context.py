"""``RunContext``: what the runner hands a job kind (the concrete ``jobs.base.JobContext``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.core.journal import Journal
from orchestrator.core.logs import ProgressDisplay
from orchestrator.core.paths import JobPaths
from orchestrator.core.session import SessionClock
from orchestrator.core.spec import JobSpecBase
from orchestrator.core.state import CheckpointRecord, JobRecord, StateStore

#: Progress is persisted at most this often (seconds); checkpoints and state changes are persisted at once.
PROGRESS_PERSIST_INTERVAL = 5.0


class RunContext:
    """Stop requests (deadline, signal, lost lease), progress and checkpoint reports, the journal."""

    def __init__(self, spec: JobSpecBase, paths: JobPaths, record: JobRecord, states: StateStore,
                 journal: Journal, clock: SessionClock, session_id: str, session_index: int,
                 log: logging.Logger | None = None, lease_lost: Callable[[], str | None] = lambda: None,
                 now: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.paths = paths
        self.record = record
        self.states = states
        self.journal = journal
        self.clock = clock
        self.session_id = session_id
        self.session_index = session_index
        self.log = log or logging.getLogger(f"orchestrator.job.{spec.name}")
        self._lease_lost = lease_lost
        self._now = now
        self._lock = threading.RLock()
        self._stop_reason: str | None = None
        self.stop_event = threading.Event()
        self._last_persist = 0.0
        self._last_report: tuple[float, int] | None = None
        self.display = ProgressDisplay(spec.name)

    # stopping
    def request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self.log.warning("stop requested: %s", reason)
        self.stop_event.set()

    def stop_requested(self) -> str | None:
        if self._stop_reason is None:
            lost = self._lease_lost()
            if lost:
                self.request_stop("lease-lost")
            elif self.clock.expired():
                self.request_stop("deadline")
        return self._stop_reason

    def seconds_left(self) -> float:
        return self.clock.seconds_left()

    def wait(self, seconds: float) -> str | None:
        """Sleep up to ``seconds``, waking early on a stop request; returns the stop reason if any."""
        end = self._now() + seconds
        while True:
            reason = self.stop_requested()
            remaining = end - self._now()
            if reason or remaining <= 0:
                return reason
            self.stop_event.wait(min(remaining, 1.0, max(self.seconds_left(), 0.01)))

    # reports
    def report_progress(self, counter: int, total: int | None = None, unit: str = "it", **extra: Any) -> None:
        with self._lock:
            now = self._now()
            progress = self.record.progress
            if self._last_report is not None:
                last_t, last_counter = self._last_report
                if counter >= last_counter:
                    progress.gained += counter - last_counter
                    progress.running_seconds += now - last_t
            self._last_report = (now, counter)
            progress.counter, progress.unit, progress.updated = counter, unit, now
            if total is not None:
                progress.total = total
            if extra:
                progress.extra.update(extra)
            self.display.update(counter, progress.total, unit)
            if now - self._last_persist >= PROGRESS_PERSIST_INTERVAL:
                self.persist()

    def report_checkpoint(self, name: str, counter: int | None = None, **extra: Any) -> None:
        with self._lock:
            self.record.last_checkpoint = CheckpointRecord(name=name, counter=counter, time=self._now(),
                                                           extra=extra)
            self.record.restarts = 0  # progress was made: crash budget starts over
            self.journal.append("checkpoint", name=name, counter=counter, session=self.session_id, **extra)
            self.persist()

    def show(self, line: str) -> None:
        """Pass a line of the job's own output through to the console (not torn by the progress bar)."""
        self.display.show(line)

    def record_event(self, event: str, **fields: Any) -> None:
        self.journal.append(event, session=self.session_id, **fields)

    def persist(self) -> None:
        with self._lock:
            self.states.save(self.record)
            self._last_persist = self._now()

    def process_log(self, what: str) -> Path:
        path = self.paths.session_log(self.session_index, self.session_id, what)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
