"""The runner with a small in-test job kind: steps and fingerprints, outcomes, deadline with a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Step, Stopped
from orchestrator.app.jobfile import parse_job_text
from orchestrator.app.runner import JobRunner
from orchestrator.core.errors import BuildError
from orchestrator.core.journal import Journal
from orchestrator.core.paths import JobPaths
from orchestrator.core.spec import JobSpecBase
from orchestrator.core.state import JobState


@dataclass
class Script:
    """One test's scenario: the steps' fingerprints, which outputs are present, what ran, what runs return."""

    inputs: dict[str, str] = field(default_factory=lambda: {"build": "fp-a", "dataset": "fp-b"})
    present: dict[str, bool] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    outcomes: list[Any] = field(default_factory=list)


class StepJob(JobKind):
    """Two steps whose fingerprints come from the script's ``inputs``; its ``outcomes`` are returned by
    successive runs."""

    kind = "command"

    def __init__(self, spec: JobSpecBase, paths: JobPaths, script: Script) -> None:
        super().__init__(spec, paths)
        self.script = script

    def steps(self, ctx: JobContext) -> list[Step]:
        def action(name: str):
            def run(c: JobContext) -> None:
                self.script.ran.append(name)
            return run
        return [Step(name, self.script.inputs[name], action(name), lambda n=name: self.script.present.get(n, True))
                for name in ("build", "dataset")]

    def run(self, ctx: JobContext) -> RunOutcome:
        outcome = self.script.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        if callable(outcome):
            return outcome(ctx)
        return outcome


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def runner(tmp_path: Path, script: Script):
    text = (f"name: stepjob\nkind: command\ncheckpoint_dir: '{tmp_path}'\ncommand: [x]\n"
            "restart: {max_restarts: 1, backoff: 0}\n")
    spec = parse_job_text(text, "job.yaml", tmp_path)

    def make(now=None) -> JobRunner:
        kwargs = {"now": now} if now else {}
        return JobRunner(spec, kind_factory=lambda kind: partial(StepJob, script=script), **kwargs)
    return make


def journal_events(r: JobRunner, name: str) -> list[dict]:
    return [e for e in Journal(r.paths.journal).events() if e["event"] == name]


def test_steps_run_once_and_rerun_only_when_inputs_change_or_outputs_vanish(runner, script: Script) -> None:
    script.outcomes = [Stopped("deadline"), Stopped("deadline"), Stopped("deadline"), Completed()]
    r = runner()
    assert r.run(handle_signals=False).state is JobState.PAUSED
    assert script.ran == ["build", "dataset"]
    r.run(handle_signals=False)
    assert script.ran == ["build", "dataset"]  # nothing changed: both skipped
    assert len(journal_events(r, "step_skipped")) == 2
    script.inputs["dataset"] = "fp-b2"     # the dataset changed
    script.present["build"] = False        # the local build vanished with the VM
    r.run(handle_signals=False)
    assert script.ran == ["build", "dataset", "build", "dataset"]
    assert r.run(handle_signals=False).state is JobState.COMPLETED


def test_crash_then_success_within_one_session(runner, script: Script) -> None:
    script.outcomes = [Crashed("exit code 1", 1, ["oops"]), Completed("ok")]
    r = runner()
    result = r.run(handle_signals=False)
    assert result.state is JobState.COMPLETED and result.exit_code == 0
    assert [e["exit_code"] for e in journal_events(r, "crash")] == [1]


def test_error_a_restart_cannot_fix_fails_at_once_and_is_recorded(runner, script: Script) -> None:
    script.outcomes = [BuildError("darknet did not compile: missing cuda.h")]
    r = runner()
    with pytest.raises(BuildError):
        r.run(handle_signals=False)
    record = r.states.load()
    assert record.state is JobState.FAILED and "cuda.h" in record.reason
    assert record.sessions[-1].end_reason == "failed"


def test_deadline_with_a_fake_clock(runner, script: Script) -> None:
    clock = [1_000_000.0]

    def work(ctx: JobContext) -> RunOutcome:
        for step in range(100):
            clock[0] += 600  # ten minutes of work per step
            ctx.report_progress(step + 1, 100)
            reason = ctx.stop_requested()
            if reason:
                return Stopped(reason)
        return Completed()

    script.outcomes = [work]
    r = runner(now=lambda: clock[0])
    result = r.run(handle_signals=False)
    assert result.state is JobState.PAUSED and result.reason == "deadline"
    record = r.states.load()
    # 12 h budget - 15 min margin = 705 min: the 71st ten-minute step crosses it
    assert record.progress.counter == 71
    assert record.progress.rate() == pytest.approx(1 / 600)


def test_completed_job_reopens_only_on_request(runner, script: Script) -> None:
    script.outcomes = [Completed("first"), Completed("second")]
    r = runner()
    assert r.run(handle_signals=False).state is JobState.COMPLETED
    assert r.run(handle_signals=False).reason == "first"  # nothing ran: already completed
    assert script.outcomes == [Completed("second")]
    result = r.run(handle_signals=False, reopen=True)
    assert result.state is JobState.COMPLETED and result.reason == "second"
    reasons = [e["reason"] for e in journal_events(r, "transition") if e["from_state"] == "completed"]
    assert reasons == ["reopened"]
