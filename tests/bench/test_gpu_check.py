"""bench/gpu_check.sh --dry-run: the script's own steps where no GPU is (job file, synthetic data, kill -9 and
resume through the real CLI with the stand-in darknet, the face checks on CPU, the table)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_dry_run_passes_every_step_and_prints_one_table(tmp_path: Path) -> None:
    work = tmp_path / "gpu check ü"
    result = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                            text=True, timeout=400, check=False,
                            env={**os.environ, "PYTHON": sys.executable, "WORK": str(work)})
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    table = (work / "gpu_check.txt").read_text()
    assert table == result.stdout.lstrip("\n") or table.strip() == result.stdout.strip()
    rows = {line.split("  ")[0].strip(): line for line in table.splitlines()[2:-1]}
    assert "killed the session at iteration" in rows["train, kill -9 mid-run"]
    resumed = rows["resume to max_batches"]
    assert " PASS " in resumed and "final weights at 800" in resumed
    assert "worst IoU 1.0" in rows["face fp16 vs fp32 (cpu)"]  # fp32 both sides on CPU
    assert table.rstrip().endswith("all checks passed")
