"""Test helper: where a job's local work folder is (``<work_dir>/<name>-<job id>``, the id from its state)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.paths import JobPaths
from orchestrator.core.state import read_record


def work_folder(job_dir: Path, name: str, checkpoint_dir: str = "jobs", work_dir: str = "work") -> Path:
    record = read_record(JobPaths(home=job_dir / checkpoint_dir / name))
    assert record is not None and record.job_id, f"job {name} has no identity yet"
    return job_dir / work_dir / f"{name}-{record.job_id}"
