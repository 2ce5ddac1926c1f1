"""``results/`` of a trained darknet job: plain names, and enough on its own to use the model."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.jobs.darknet.test_job import FAKE, cli, job_dir, job_yaml  # noqa: F401


def test_results_alone_run_detector_test_after_the_vm_is_gone(job_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    yaml = job_yaml("alexeyab", sleep="0").replace("train: {", "train: {map: true, ")
    (job_dir / "job.yaml").write_text(yaml)
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    results = job_dir / "jobs" / "det" / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "HOW-TO-USE.txt", "best.weights", "final.weights", "micro.cfg", "obj.data", "obj.names"]
    assert (results / "obj.data").read_text() == "classes = 1\nnames = obj.names\nbackup = backup/\n"
    how = (results / "HOW-TO-USE.txt").read_text()
    assert "detector test obj.data micro.cfg best.weights" in how and "detector map obj.data micro.cfg" in how
    status = cli(job_dir, "status", "job.yaml").stdout
    assert f"results    {results}" in status and "loss_chart" in status
    by_folder = cli(job_dir, "status", str(job_dir / "jobs" / "det")).stdout
    def shape(text: str) -> list[str]:  # the lines less their ages, which tick between the two calls
        return [re.sub(r"\d+(h\d+m|m\d+s|s) ago", "AGE ago", line) for line in text.splitlines()]

    assert shape(by_folder) == shape(status)

    # the VM is gone: only results/ (copied from Drive to another machine) and an image remain
    elsewhere = tmp_path / "another machine" / "results"
    shutil.copytree(results, elsewhere)
    shutil.rmtree(job_dir)
    image = tmp_path / "street.png"
    image.write_bytes(b"\x89PNG not really")
    test = subprocess.run([sys.executable, str(FAKE), "detector", "test", "obj.data", "micro.cfg", "final.weights",
                           str(image), "-dont_show"], cwd=elsewhere, capture_output=True, text=True, timeout=60,
                          check=False)
    assert test.returncode == 0, test.stderr
    assert "Predicted in" in test.stdout and "box: 87%" in test.stdout
    assert (elsewhere / "predictions.jpg").read_bytes() == image.read_bytes()
