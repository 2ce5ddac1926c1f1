"""``status``: the report built from a job's state file, lease and journal tail, with a fake ``now``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from orchestrator.app.status import format_status, job_status
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.journal import Journal
from orchestrator.core.lease import LeaseInfo
from orchestrator.core.paths import JobPaths
from orchestrator.core.state import (
    CheckpointRecord,
    ErrorRecord,
    JobRecord,
    JobState,
    ProgressRecord,
    SessionRecord,
    StateStore,
    StepRecord,
)

NOW = 1_800_000_000.0  # the fake "now" of every report here
HOUR = 3600.0


@pytest.fixture
def paths(tmp_path: Path) -> JobPaths:
    home = tmp_path / "jobs ü" / "yolo run"
    home.mkdir(parents=True)
    return JobPaths.for_home(home)


def save_record(paths: JobPaths, **changes: object) -> JobRecord:
    """A darknet job paused at its deadline after two sessions: 2 h of running for 1,000 of 4,000 iterations."""
    fields: dict[str, object] = {
        "job": "yolo run", "kind": "darknet", "state": JobState.PAUSED, "reason": "deadline", "current_step": "train",
        "steps": {"dataset": StepRecord(fingerprint="d", done_at=NOW - 3 * HOUR),
               "darknet": StepRecord(fingerprint="b", done_at=NOW - 3 * HOUR)},
        "progress": ProgressRecord(counter=1000, total=4000, unit="iterations", updated=NOW - 600,
                                gained=1000, running_seconds=2 * HOUR, extra={"loss": 0.123456, "map": None}),
        "sessions": [SessionRecord(id="s1", index=1, host="colab-a", pid=11, started=NOW - 3 * HOUR,
                                ended=NOW - 2 * HOUR, end_reason="deadline"),
                  SessionRecord(id="s2", index=2, host="colab-b", pid=22, started=NOW - 2 * HOUR,
                                ended=NOW - HOUR, end_reason="deadline")],
        "last_checkpoint": CheckpointRecord(name="yolo_last.weights", counter=1000, time=NOW - 90),
    }
    fields.update(changes)
    record = JobRecord(**fields)  # type: ignore[arg-type]
    journal = Journal(paths.journal, now=lambda: NOW - 60)
    journal.append("session_end", session="s2", end_reason="deadline")
    return StateStore(paths, journal, now=lambda: NOW - 30).save(record)


def test_a_job_that_never_ran() -> None:
    report = job_status(JobPaths.for_home(Path("/nonexistent/jobs/fresh")), now=NOW)
    assert report.state is JobState.NEW and report.never_run
    assert report.to_dict() == {"job": "fresh", "home": "/nonexistent/jobs/fresh", "state": "new",
                                "reason": "never run"}
    assert format_status(report) == "job fresh  (?)  /nonexistent/jobs/fresh\n  state      new - never run"


def test_to_dict_of_a_paused_job(paths: JobPaths) -> None:
    save_record(paths)
    out = job_status(paths, now=NOW, extra={"best_map": 0.5}).to_dict()
    assert (out["job"], out["kind"], out["state"], out["reason"]) == ("yolo run", "darknet", "paused", "deadline")
    assert out["updated"] == NOW - 30 and out["current_step"] == "train"
    assert out["steps_done"] == ["darknet", "dataset"]  # sorted
    assert out["progress"] == {"counter": 1000, "total": 4000, "unit": "iterations",
                               "rate_per_second": pytest.approx(1000 / 7200),
                               "eta_seconds": pytest.approx(3000 * 7.2), "updated": NOW - 600,
                               "loss": 0.123456, "map": None}
    assert out["latest_checkpoint"] == {"name": "yolo_last.weights", "counter": 1000, "time": NOW - 90,
                                        "extra": {}, "age": 90.0}
    assert out["sessions"]["count"] == 2 and out["sessions"]["total_run_seconds"] == 2 * HOUR
    assert [s["id"] for s in out["sessions"]["recent"]] == ["s1", "s2"]
    assert out["lease"] is None and out["last_error"] is None and out["restarts"] == 0
    assert [e["event"] for e in out["recent_events"]] == ["session_end"]
    assert out["job_kind"] == {"best_map": 0.5}
    json.dumps(out)  # what `status --json` prints: plain JSON


def test_format_of_a_paused_job(paths: JobPaths) -> None:
    save_record(paths)
    text = format_status(job_status(paths, now=NOW, extra={"best_map": 0.5}))
    assert text.splitlines() == [
        f"job yolo run  (darknet)  {paths.home}",
        "  state      paused - deadline",
        "  step       train",
        "  progress   1000/4000 iterations (25.0%), 8.33 iterations/min, ETA 6h00m of running",
        "  loss       0.1235",  # short floats; the unset map is not shown
        "  checkpoint yolo_last.weights @ 1000, 1m30s ago",
        "  sessions   2, 2h00m in all",
        "    #1 s1 on colab-a: 1h00m, deadline",
        "    #2 s2 on colab-b: 1h00m, deadline",
        "  best_map   0.5",
    ]


def test_only_the_newest_five_sessions_are_listed_but_all_are_counted(paths: JobPaths) -> None:
    sessions = [SessionRecord(id=f"s{i}", index=i, host="vm", pid=i, started=NOW - 10 * HOUR + i * HOUR,
                              ended=NOW - 10 * HOUR + i * HOUR + 60, end_reason="vanished") for i in range(1, 8)]
    save_record(paths, sessions=sessions)
    report = job_status(paths, now=NOW)
    assert report.session_count == 7 and [s.id for s in report.sessions] == ["s3", "s4", "s5", "s6", "s7"]
    assert report.total_run_seconds == 7 * 60
    assert "  sessions   7, 7m00s in all" in format_status(report)


def test_a_failed_job_shows_its_error_and_the_log_tail(paths: JobPaths) -> None:
    tail = [f"line {i}" for i in range(8)]
    save_record(paths, state=JobState.FAILED, reason="crashed 3 times", restarts=3,
                last_error=ErrorRecord(message="darknet exited with code 1", exit_code=1, log_tail=tail,
                                       time=NOW - 5))
    report = job_status(paths, now=NOW)
    assert report.to_dict()["last_error"] == {"message": "darknet exited with code 1", "exit_code": 1,
                                              "log_tail": tail, "time": NOW - 5}
    text = format_status(report)
    assert "  last error darknet exited with code 1" in text
    assert [line for line in text.splitlines() if line.startswith("    | ")] == [f"    | line {i}" for i in range(3, 8)]


def test_a_lease_of_a_vanished_machine_is_reported_stale_and_its_token_hidden(paths: JobPaths) -> None:
    save_record(paths, state=JobState.RUNNING, reason="")
    lease = LeaseInfo(token="secret-token", session_id="s3", host="colab-gone", boot_id="b", pid=33,
                      acquired=NOW - 2000, heartbeat=NOW - 700)
    atomic_write_json(paths.lease, asdict(lease))
    report = job_status(paths, lease_ttl=600, now=NOW)
    shown = report.to_dict()["lease"]
    assert "token" not in shown and "secret-token" not in json.dumps(report.to_dict())
    assert shown["host"] == "colab-gone" and shown["heartbeat_age"] == 700.0
    assert shown["stale"] == "its heartbeat stopped 700s ago (TTL 600s)"
    assert ("  lease      STALE (its heartbeat stopped 700s ago (TTL 600s)): session s3 on colab-gone pid 33, "
            "heartbeat 11m40s ago") in format_status(report)
    fresh = job_status(paths, lease_ttl=900, now=NOW)  # within the TTL: still live
    assert fresh.lease is not None and fresh.lease.stale is None
    assert "  lease      live: session s3" in format_status(fresh)


def test_progress_without_a_rate_shows_no_eta(paths: JobPaths) -> None:
    save_record(paths, progress=ProgressRecord(counter=0, total=None, unit="frames"), last_checkpoint=None)
    out = job_status(paths, now=NOW).to_dict()
    assert out["progress"]["rate_per_second"] is None and out["progress"]["eta_seconds"] is None
    assert out["latest_checkpoint"] is None
    lines = format_status(job_status(paths, now=NOW)).splitlines()
    assert not [line for line in lines if line.startswith(("  progress", "  checkpoint"))]


def test_a_store_refusing_uploads_is_shown_while_the_pause_lasts(paths: JobPaths) -> None:
    save_record(paths, state=JobState.RUNNING, reason="")
    Journal(paths.journal, now=lambda: NOW - 600).append(
        "store_paused", session="s2", reason="the Drive daily upload cap was reached", seconds=3600.0)
    report = job_status(paths, now=NOW)
    assert report.to_dict()["uploads_paused"] == {"reason": "the Drive daily upload cap was reached",
                                                  "until": NOW - 600 + 3600.0}
    shown = [line for line in format_status(report).splitlines() if line.startswith("  uploads")]
    assert shown and "paused: the Drive daily upload cap was reached" in shown[0]
    assert job_status(paths, now=NOW + 3600).uploads_paused is None  # the pause is over: uploads resume
    save_record(paths, state=JobState.PAUSED)  # a session that ended no longer uploads at all
    assert job_status(paths, now=NOW).uploads_paused is None
