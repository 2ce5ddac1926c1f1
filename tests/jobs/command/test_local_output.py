"""``local_output: true``: checkpoints on local disk, live-synced to the store, restored on a blank machine."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import cli, job_yaml, popen_cli

ENV = {"STEPS": "12", "STEP_SECONDS": "0.05"}


def local_job(job_dir: Path, extra: str = "") -> None:
    (job_dir / "job.yaml").write_text(job_yaml(extra="local_output: true\nretention: {keep_last: 2}\n" + extra))


def stored_checkpoints(job_dir: Path) -> list[dict]:
    result = cli(job_dir, "checkpoints", "job.yaml", "--json")
    assert result.returncode == 0, result.stderr
    return [row for row in json.loads(result.stdout) if row["where"] == "store"]


def test_checkpoints_reach_the_store_and_retention_keeps_the_newest(job_dir: Path) -> None:
    local_job(job_dir)
    assert cli(job_dir, "run", "job.yaml", env=ENV).returncode == 0
    stored = stored_checkpoints(job_dir)
    assert sorted(row["counter"] for row in stored) == [11, 12]
    assert not (job_dir / "jobs" / "count" / "output").exists()  # nothing written to the durable folder directly
    assert (job_dir / "work" / "count" / "output" / "result.txt").exists()


@pytest.mark.slow
def test_blank_machine_after_kill_9_restores_from_the_store(job_dir: Path) -> None:
    local_job(job_dir)
    reference = cli(job_dir, "run", "job.yaml", env=ENV)
    assert reference.returncode == 0
    expected = (job_dir / "work" / "count" / "output" / "result.txt").read_text()
    shutil.rmtree(job_dir / "jobs" / "count")
    shutil.rmtree(job_dir / "work")

    proc = popen_cli(job_dir, "run", "job.yaml", env={"STEPS": "12", "STEP_SECONDS": "0.15"})
    deadline = time.time() + 30
    while time.time() < deadline:
        counters = [r["counter"] for r in stored_checkpoints(job_dir)]
        if counters and max(counters) >= 4:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.communicate()
    synced = max(r["counter"] for r in stored_checkpoints(job_dir))
    shutil.rmtree(job_dir / "work")  # the VM is gone: local disk is blank

    result = cli(job_dir, "run", "job.yaml", env=ENV)
    assert result.returncode == 0, result.stderr
    logs = "".join(p.read_text() for p in (job_dir / "jobs" / "count" / "logs").glob("session-002-*.command.log"))
    resumed_at = int(logs.split("resuming at ")[1].split()[0])
    assert resumed_at >= synced  # nothing that reached the store was lost
    assert (job_dir / "work" / "count" / "output" / "result.txt").read_text() == expected


def test_listing_explains_invalid_checkpoints_and_marks_the_resume_choice(job_dir: Path) -> None:
    local_job(job_dir)
    assert cli(job_dir, "run", "job.yaml", env={"STEPS": "3"}).returncode == 0
    out = job_dir / "work" / "count" / "output"
    (out / "ckpt-0007.txt").write_text("")                                   # zero bytes
    (out / "ckpt-0008.txt").write_text("<!DOCTYPE html><html>Quota exceeded</html>")  # an HTML error page
    result = cli(job_dir, "checkpoints", "job.yaml")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[1] if line.startswith("*") else line.split()[0]: line
             for line in result.stdout.splitlines()[2:]}
    assert "invalid" in lines["ckpt-0007.txt"] and "empty" in lines["ckpt-0007.txt"]
    assert "invalid" in lines["ckpt-0008.txt"] and "HTML" in lines["ckpt-0008.txt"]
    chosen = [line for line in result.stdout.splitlines() if line.startswith("*")]
    assert len(chosen) == 1 and "ckpt-0003.txt" in chosen[0]
