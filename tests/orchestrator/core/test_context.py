"""``RunContext`` with a fake clock: stop requests (deadline, signal, lost lease), progress and checkpoint reports."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from orchestrator.app.jobfile import parse_job_text
from orchestrator.core.context import PROGRESS_PERSIST_INTERVAL, RunContext
from orchestrator.core.journal import Journal
from orchestrator.core.paths import JobPaths
from orchestrator.core.session import SessionClock
from orchestrator.core.state import JobRecord, StateStore

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Lease:
    """What the heartbeat thread reports: None while the lease is ours, else why it was lost."""

    def __init__(self) -> None:
        self.lost: str | None = None

    def __call__(self) -> str | None:
        return self.lost


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lease() -> Lease:
    return Lease()


@pytest.fixture
def make_ctx(tmp_path: Path, clock: FakeClock, lease: Lease):  # type: ignore[no-untyped-def]
    spec = parse_job_text(f"name: count\nkind: command\ncheckpoint_dir: '{tmp_path / 'jobs ü'}'\ncommand: [x]\n",
                          "job.yaml", tmp_path)
    paths = JobPaths.for_spec(spec)
    paths.home.mkdir(parents=True)
    journal = Journal(paths.journal, now=clock)
    states = StateStore(paths, journal, now=clock)

    def make(budget: float = 3600.0, margin: float = 600.0, now=clock) -> RunContext:  # type: ignore[no-untyped-def]
        session = SessionClock(started=now(), budget=budget, margin=margin, now=now)
        record = JobRecord(job="count", kind="command", restarts=2)
        return RunContext(spec, paths, record, states, journal, session, "s1", 1, lease_lost=lease, now=now)
    return make


def test_the_deadline_is_budget_minus_margin(make_ctx, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(budget=3600.0, margin=600.0)
    clock.advance(2999)
    assert ctx.stop_requested() is None and ctx.seconds_left() == pytest.approx(1)
    assert not ctx.stop_event.is_set()
    clock.advance(1)
    assert ctx.stop_requested() == "deadline" and ctx.stop_event.is_set()
    assert ctx.wait(100) == "deadline"  # returns at once


def test_a_signal_stops_before_the_deadline_and_the_first_reason_sticks(make_ctx, clock: FakeClock,  # type: ignore[no-untyped-def]
                                                                       lease: Lease) -> None:
    ctx = make_ctx()
    clock.advance(10)
    ctx.request_stop("signal")
    assert ctx.stop_requested() == "signal"
    clock.advance(10_000)  # the deadline passes and the lease is lost while stopping: still "signal"
    lease.lost = "taken over by session s2"
    ctx.request_stop("deadline")
    assert ctx.stop_requested() == "signal"


def test_a_lost_lease_stops_the_job(make_ctx, clock: FakeClock, lease: Lease) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    assert ctx.stop_requested() is None
    lease.lost = "the lease file now names session s2"
    assert ctx.stop_requested() == "lease-lost"
    clock.advance(10_000)
    assert ctx.stop_requested() == "lease-lost"


def test_a_lost_lease_wins_over_a_deadline_seen_at_the_same_time(make_ctx, clock: FakeClock,  # type: ignore[no-untyped-def]
                                                                 lease: Lease) -> None:
    ctx = make_ctx()
    clock.advance(10_000)
    lease.lost = "taken over"
    assert ctx.stop_requested() == "lease-lost"  # another session owns the job now: do not write as if paused


def test_wait_wakes_early_on_a_stop_request_from_another_thread(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(now=time.time)
    timer = threading.Timer(0.1, ctx.request_stop, args=("signal",))
    started = time.monotonic()
    timer.start()
    try:
        assert ctx.wait(30) == "signal"
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert make_ctx(now=time.time).wait(0.05) is None  # nothing asked: sleeps the time out


def test_progress_is_persisted_at_most_every_interval(make_ctx, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    ctx.report_progress(1, 100)  # the first report is persisted
    assert ctx.states.load().progress.counter == 1
    for counter in range(2, 6):
        clock.advance(1)
        ctx.report_progress(counter, 100)
    assert ctx.record.progress.counter == 5  # in memory at once ...
    assert ctx.states.load().progress.counter == 1  # ... on disk only every PROGRESS_PERSIST_INTERVAL
    clock.advance(PROGRESS_PERSIST_INTERVAL - 4)
    ctx.report_progress(6, 100)
    saved = ctx.states.load().progress
    assert (saved.counter, saved.total, saved.updated) == (6, 100, clock.t)


def test_a_checkpoint_is_persisted_at_once_and_resets_the_crash_budget(make_ctx, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    ctx.report_progress(1, 100)
    clock.advance(1)
    ctx.report_progress(7, 100)  # inside the interval: not yet on disk
    ctx.report_checkpoint("ckpt-0007.txt", 7, sha256="ab")
    saved = ctx.states.load()
    assert saved.last_checkpoint is not None
    assert (saved.last_checkpoint.name, saved.last_checkpoint.counter, saved.last_checkpoint.time) == (
        "ckpt-0007.txt", 7, clock.t)
    assert saved.progress.counter == 7 and saved.restarts == 0  # progress was made: restarts start over
    (event,) = [e for e in ctx.journal.events() if e["event"] == "checkpoint"]
    assert (event["name"], event["counter"], event["session"], event["sha256"]) == ("ckpt-0007.txt", 7, "s1", "ab")


def test_rate_counts_running_time_only_and_ignores_going_back(make_ctx, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    ctx.report_progress(100, 1000, unit="iterations", loss=2.5)
    clock.advance(10)
    ctx.report_progress(150, 1000, unit="iterations")
    progress = ctx.record.progress
    assert (progress.gained, progress.running_seconds) == (50, 10)
    assert progress.rate() == pytest.approx(5.0) and progress.eta_seconds() == pytest.approx(170.0)
    assert progress.extra == {"loss": 2.5} and progress.unit == "iterations"
    clock.advance(10)
    ctx.report_progress(120, 1000, unit="iterations")  # resumed from an older checkpoint: no negative gain
    assert (progress.gained, progress.running_seconds) == (50, 10)
    clock.advance(10)
    ctx.report_progress(130, 1000, unit="iterations")
    assert (progress.gained, progress.running_seconds) == (60, 20)
