"""The run/status cycle through the real CLI, as a user drives it.

``cli`` runs ``main(argv)`` in this process; a kill -9, a SIGTERM and two sessions at once need processes of
their own (``popen_cli``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.journal import Journal
from orchestrator.core.lease import LeaseInfo
from tests.conftest import cli, job_yaml, popen_cli


def events(job_dir: Path, name: str = "count") -> list[dict]:
    return list(Journal(job_dir / "jobs" / name / "journal.jsonl").events())


def status_json(job_dir: Path, target: str = "job.yaml") -> dict:
    result = cli(job_dir, "status", target, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_command_job_runs_to_completion(job_dir: Path) -> None:
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    out = job_dir / "jobs" / "count" / "output"
    assert (out / "done.txt").exists() and len(list(out.glob("ckpt-*.txt"))) == 10
    report = status_json(job_dir)
    assert report["state"] == "completed"
    assert report["progress"]["counter"] == 10 and report["progress"]["total"] == 10
    assert report["latest_checkpoint"]["name"] == "ckpt-0010.txt"
    assert report["sessions"]["count"] == 1
    again = cli(job_dir, "run", "job.yaml")
    assert again.returncode == 0 and "already completed" in again.stderr


def test_deadline_pauses_cleanly_and_the_next_run_resumes(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml(budget="0.6s"))
    env = {"STEPS": "20", "STEP_SECONDS": "0.1"}
    first = cli(job_dir, "run", "job.yaml", env=env)
    assert first.returncode == 75, first.stderr
    assert "paused (deadline)" in first.stdout
    report = status_json(job_dir)
    assert report["state"] == "paused" and report["reason"] == "deadline"
    reached = report["latest_checkpoint"]["counter"]
    assert 1 <= reached < 20
    second = cli(job_dir, "run", "job.yaml", env=env)
    assert second.returncode == 75
    log = (job_dir / "jobs" / "count" / "logs")
    assert any(f"resuming at {reached}" in p.read_text() for p in log.glob("session-002-*.command.log"))
    assert status_json(job_dir)["latest_checkpoint"]["counter"] > reached
    for _ in range(20):
        result = cli(job_dir, "run", "job.yaml", env=env)
        if result.returncode == 0:
            break
        assert result.returncode == 75
    assert status_json(job_dir)["state"] == "completed"
    ends = [e["end_reason"] for e in events(job_dir) if e["event"] == "session_end"]
    assert ends[-1] == "completed" and set(ends[:-1]) == {"deadline"}


def test_sigterm_pauses_with_reason_signal(job_dir: Path) -> None:
    proc = popen_cli(job_dir, "run", "job.yaml", env={"STEPS": "100", "STEP_SECONDS": "0.05"})
    home = job_dir / "jobs" / "count" / "output"
    deadline = time.time() + 20
    while not list(home.glob("ckpt-*.txt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 75, err
    report = status_json(job_dir)
    assert report["state"] == "paused" and report["reason"] == "signal"


def test_two_concurrent_runs_exactly_one_proceeds(job_dir: Path) -> None:
    env = {"STEPS": "30", "STEP_SECONDS": "0.05"}
    procs = [popen_cli(job_dir, "run", "job.yaml", env=env) for _ in range(2)]
    results = [(p.wait(timeout=60), p.communicate()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 3], results
    refused = next(err for code, (_, err) in results if code == 3)
    assert "already running: lease held by session" in refused and f"host {socket.gethostname()}" in refused
    starts = [e for e in events(job_dir) if e["event"] == "session_start"]
    assert len(starts) == 1


def test_stale_lease_of_a_vanished_machine_is_taken_over(job_dir: Path) -> None:
    assert cli(job_dir, "run", "job.yaml", env={"STEPS": "3"}).returncode == 0
    (job_dir / "job.yaml").write_text(job_yaml(name="other"))
    home = job_dir / "jobs" / "other"
    home.mkdir()
    old = LeaseInfo(token="x", session_id="gone-vm-session", host="colab-vm-that-died", boot_id="b", pid=77,
                    acquired=time.time() - 4000, heartbeat=time.time() - 3000)
    atomic_write_json(home / "lease.json", asdict(old))
    result = cli(job_dir, "run", "job.yaml", env={"STEPS": "3"})
    assert result.returncode == 0, result.stderr
    takeover = [e for e in events(job_dir, "other") if e["event"] == "lease_takeover"]
    assert takeover and takeover[0]["previous_host"] == "colab-vm-that-died"
    assert "heartbeat stopped" in takeover[0]["why"]


def test_kill_9_is_recorded_as_interruption_and_resumed(job_dir: Path) -> None:
    proc = popen_cli(job_dir, "run", "job.yaml", env={"STEPS": "40", "STEP_SECONDS": "0.05"})
    out = job_dir / "jobs" / "count" / "output"
    deadline = time.time() + 20
    while len(list(out.glob("ckpt-*.txt"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    report = status_json(job_dir)
    assert report["state"] == "running" and report["lease"]["stale"]  # what a user sees before re-running
    result = cli(job_dir, "run", "job.yaml", env={"STEPS": "40", "STEP_SECONDS": "0.01"})
    assert result.returncode == 0, result.stderr
    transitions = [(e["from_state"], e["to_state"]) for e in events(job_dir) if e["event"] == "transition"]
    assert ("running", "interrupted") in transitions
    vanished = [e for e in events(job_dir) if e["event"] == "session_end" and e["end_reason"] == "vanished"]
    assert len(vanished) == 1


def test_crash_loop_fails_with_reason_and_retry_resumes(job_dir: Path) -> None:
    env = {"STEPS": "10", "FAIL_AT": "4"}
    result = cli(job_dir, "run", "job.yaml", env=env)
    assert result.returncode == 4
    report = status_json(job_dir)
    assert report["state"] == "failed" and "crashed 3 times" in report["reason"]
    assert report["last_error"]["exit_code"] == 3
    assert any("boom: simulated crash" in line for line in report["last_error"]["log_tail"])
    crashes = [e for e in events(job_dir) if e["event"] == "crash"]
    assert len(crashes) == 3
    refused = cli(job_dir, "run", "job.yaml", env=env)
    assert refused.returncode == 4 and "--retry" in refused.stderr and "boom" in refused.stderr
    fixed = cli(job_dir, "run", "job.yaml", "--retry", env={"STEPS": "10"})
    assert fixed.returncode == 0, fixed.stderr
    assert status_json(job_dir)["state"] == "completed"


def test_status_on_the_job_folder_and_of_a_new_job(job_dir: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(job_dir)
    assert main(["status", "job.yaml"]) == 0
    assert "state      new" in capsys.readouterr().out
    assert main(["run", "job.yaml"]) == 0
    capsys.readouterr()
    assert main(["status", str(job_dir / "jobs" / "count")]) == 0
    text = capsys.readouterr().out
    assert "state      completed" in text and "10/10 it (100.0%)" in text and "ckpt-0010.txt @ 10" in text
    assert main(["status", str(job_dir)]) == 2  # not a job folder
