"""What ``status`` and ``run`` print for a person: the device, errors that are over, no ETA when failed,
human units, and no traceback when the reader of ``status | head`` goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.app.status import ProgressReport, StatusReport, format_status
from orchestrator.core import gpu as gpu_probe
from orchestrator.core.state import JobState
from tests.conftest import REPO, cli

FAKES = REPO / "tests" / "fakes"


def test_the_first_lines_name_the_device(job_dir: Path) -> None:
    gpu_probe.detect_gpus.cache_clear()  # the probe asks nvidia-smi once per process: each run is another machine
    cpu = cli(job_dir, "run", "job.yaml", env={"PATH": "/usr/bin:/bin"})
    assert "no GPU: running on CPU — in Colab choose Runtime > Change runtime type > GPU" in cpu.stderr
    (job_dir / "job.yaml").write_text((job_dir / "job.yaml").read_text().replace("name: count", "name: gpu"))
    gpu_probe.detect_gpus.cache_clear()
    gpu = cli(job_dir, "run", "job.yaml", env={"PATH": f"{FAKES}:/usr/bin:/bin", "FAKE_GPUS": "1"})
    gpu_probe.detect_gpus.cache_clear()  # the next tests see this machine again
    assert "device: GPU Tesla T4, 15360 MiB, 7.5" in gpu.stderr and "no GPU" not in gpu.stderr


def test_an_error_of_an_earlier_session_is_cleared_by_a_good_one_and_kept_in_history(job_dir: Path) -> None:
    failed = cli(job_dir, "run", "job.yaml", env={"STEPS": "10", "FAIL_AT": "4"})
    assert failed.returncode == 4
    text = cli(job_dir, "status", "job.yaml").stdout
    assert "last error" in text and "ETA" not in text  # a failed job has no ETA
    assert cli(job_dir, "run", "job.yaml", "--retry", env={"STEPS": "10"}).returncode == 0
    text = cli(job_dir, "status", "job.yaml").stdout
    assert "last error" not in text and "state      completed" in text
    events = [json.loads(line) for line in (job_dir / "jobs" / "count" / "journal.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("crash") == 3
    cleared = [e for e in events if e["event"] == "error_cleared"]
    assert len(cleared) == 1 and cleared[0]["message"] == "exit code 3"  # the crash of session 1


def test_status_piped_into_a_reader_that_leaves_prints_no_traceback(job_dir: Path) -> None:
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "status", "job.yaml"], cwd=job_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` exiting before status writes
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_rates_and_darknet_hours_left_in_human_units() -> None:
    report = StatusReport(job="det", home="/h", state=JobState.PAUSED, reason="deadline", kind="darknet",
                          progress=ProgressReport(counter=100, total=1000, unit="iter", rate_per_second=0.01,
                                                  eta_seconds=90000.0, updated=0.0, extra={"hours_left": 2.5}))
    text = format_status(report)
    assert "36 iter/h" in text and "ETA 25h00m of running" in text and "time_left  2h30m" in text
    failed = format_status(StatusReport(**{**report.__dict__, "state": JobState.FAILED}))
    assert "ETA" not in failed and "time_left" not in failed
