"""Test helper: where a job's local work folder is (``<work_dir>/<name>-<job id>``, the id from its state)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.paths import JobPaths
from orchestrator.core.state import read_record


def work_folder(job_dir: Path, name: str, checkpoint_dir: str = "jobs", work_dir: str = "work") -> Path:
    record = read_record(JobPaths(home=job_dir / checkpoint_dir / name))
    assert record is not None and record.job_id, f"job {name} has no identity yet"
    return job_dir / work_dir / f"{name}-{record.job_id}"


def create_job_home(job_dir: Path, name: str, kind: str, checkpoint_dir: str = "jobs", work_dir: str = "work"
                    ) -> Path:
    """Create a job's home with its identity as a first run does; returns its (future) work folder."""
    from orchestrator.core.journal import Journal
    from orchestrator.core.state import JobRecord, StateStore, new_job_id

    paths = JobPaths(home=job_dir / checkpoint_dir / name)
    journal = Journal(paths.journal)
    job_id = new_job_id()
    StateStore(paths, journal).save(JobRecord(job=name, kind=kind, job_id=job_id))
    journal.append("job_created", job_id=job_id, kind=kind)
    return job_dir / work_dir / f"{name}-{job_id}"
