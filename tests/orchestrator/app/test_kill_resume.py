"""kill -9 at random moments: the job always completes on re-run with the uninterrupted result."""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from orchestrator.core.state import decode_state
from tests.conftest import cli, popen_cli

TRIALS = 20
ENV = {"STEPS": "12", "STEP_SECONDS": "0.03"}


def reference_result(job_dir: Path) -> str:
    result = cli(job_dir, "run", "job.yaml", env=ENV)
    assert result.returncode == 0, result.stderr
    return (job_dir / "jobs" / "count" / "output" / "result.txt").read_text()


@pytest.mark.slow
def test_random_kill_9_always_completes_with_the_same_result(job_dir: Path) -> None:
    expected = reference_result(job_dir)
    rng = random.Random(int(os.environ.get("KILL_TEST_SEED", "20261122")))
    home = job_dir / "jobs" / "count"
    kills_while_running = 0
    for trial in range(TRIALS):
        shutil.rmtree(home)
        for _attempt in range(1 + rng.randint(1, 3)):  # one to three kills, then a clean finish
            proc = popen_cli(job_dir, "run", "job.yaml", env=ENV)
            time.sleep(rng.uniform(0.0, 1.2))
            if proc.poll() is None:
                kills_while_running += 1
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.communicate()
            if (home / "state.json").exists():
                decode_state((home / "state.json").read_bytes())  # never torn: raises if corrupt
        for _ in range(5):
            final = cli(job_dir, "run", "job.yaml", env=ENV)
            if final.returncode == 0:
                break
        assert final.returncode == 0, f"trial {trial}: {final.stderr}"
        assert (home / "output" / "result.txt").read_text() == expected, f"trial {trial}"
        decode_state((home / "state.json").read_bytes())
    assert kills_while_running >= TRIALS  # the trials really interrupted running jobs
