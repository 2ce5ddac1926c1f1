"""The public Python API: what ``python -m orchestrator`` does, as functions a notebook or a script can call.

    import orchestrator
    result = orchestrator.run("job.yaml")          # one session; again after a disconnect
    if result.state is orchestrator.JobState.PAUSED:
        ...                                        # run it again later: it resumes
    report = orchestrator.status("job.yaml")       # or the job's folder; report.to_dict() == status --json

An in-process ``run`` leaves the process as it found it: the SIGINT/SIGTERM handlers and our loggers' level,
handlers and propagation are restored when it returns (or raises).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.registry import load_job_kind
from orchestrator.app.jobfile import load_job_file
from orchestrator.app.runner import JobRunner, RunResult
from orchestrator.app.status import StatusReport, job_status
from orchestrator.core.errors import ConfigError
from orchestrator.core.journal import Journal
from orchestrator.core.logs import ROOT_LOGGER, setup_console_logging
from orchestrator.core.paths import JobPaths
from orchestrator.core.spec import JobSpecBase, SessionSpec
from orchestrator.core.state import StateStore, job_paths, read_record

__all__ = ["check_inputs", "load_job", "run", "status"]

JobRef = str | Path | JobSpecBase


def load_job(path: str | Path) -> JobSpecBase:
    """Read and validate a job file; raises :class:`~orchestrator.ConfigError` naming file, line and field."""
    return load_job_file(Path(path))


def check_inputs(job: JobRef) -> JobSpecBase:
    """What ``validate`` checks beyond the file: every path the job reads, and whether a change from the spec its
    home last ran with is usable (raises ConfigError naming the field or file; nothing is written)."""
    spec = _spec(job)
    runner = JobRunner(spec)
    runner.preflight()
    return spec


def plan(job: JobRef) -> dict[str, Any]:
    """``check_inputs``, then what the job will run where it differs from the file (a darknet job: its cfg after
    the ``train:`` settings); ``{}`` for kinds that run what the file says."""
    _, kind = JobRunner(_spec(job)).preflight()
    return kind.plan()


def _spec(job: JobRef) -> JobSpecBase:
    return job if isinstance(job, JobSpecBase) else load_job(job)


@contextmanager
def _logging_restored() -> Iterator[None]:
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (logger.level, list(logger.handlers), logger.propagate)
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        for handler in list(logger.handlers):
            if handler not in saved[1]:
                logger.removeHandler(handler)
        for handler in saved[1]:
            if handler not in logger.handlers:
                logger.addHandler(handler)
        logger.propagate = saved[2]


def run(job: JobRef, *, retry: bool = False, reopen: bool = False, takeover: bool = False,
        console: bool = True, verbose: bool = False, handle_signals: bool = True,
        new_lineage: bool = False) -> RunResult:
    """Run one session of ``job`` (a job file's path or a loaded spec): start it, or resume it where it stopped.

    ``retry`` resumes a failed job, ``reopen`` continues a completed one with changed settings, ``takeover``
    takes the job from a session whose machine is gone. ``new_lineage`` starts the checkpoints afresh after a
    change the old ones cannot follow (class count, layers), keeping the old ones in ``previous-lineages/``.
    ``console`` prints our log lines to stderr while it
    runs. SIGINT/SIGTERM ask the job to checkpoint and pause (``handle_signals``; main thread only).
    """
    spec = _spec(job)
    with _logging_restored():
        if console:
            setup_console_logging(verbose)
        return JobRunner(spec).run(takeover=takeover, retry=retry, reopen=reopen, handle_signals=handle_signals,
                                   new_lineage=new_lineage)


def saved_session_spec(paths: JobPaths) -> SessionSpec:
    """The ``session:`` settings the job last ran with (``spec.json`` in its home), or the defaults."""
    try:
        return SessionSpec.model_validate(json.loads(paths.spec_copy.read_text(encoding="utf-8"))["session"])
    except (OSError, ValueError, KeyError, TypeError):
        return SessionSpec()


def _paths_of(job: JobRef) -> tuple[JobSpecBase | None, JobPaths]:
    if isinstance(job, JobSpecBase):
        return job, job_paths(job)
    target = Path(job)
    if target.is_dir():
        paths = JobPaths.for_home(target)
        if not StateStore(paths, Journal(paths.journal)).exists() and not paths.spec_copy.exists():
            raise ConfigError(f"{target}: not a job folder (no state.json); give the job file or the job's folder")
        return None, paths
    spec = load_job(target)
    return spec, job_paths(spec)


def status(job_or_home: JobRef) -> StatusReport:
    """Where a job stands: from its job file, its loaded spec, or its home folder in ``checkpoint_dir``."""
    spec, paths = _paths_of(job_or_home)
    if spec is None:  # a job folder: the spec it last ran with gives the same lines as its job file
        spec = saved_spec(paths)
        record = read_record(paths) if spec is not None else None
        if spec is not None and record is not None and record.job_id:  # the work folder of this job's identity
            paths = JobPaths(home=paths.home, local=JobPaths.for_spec(spec, record.job_id).work)
    if spec is not None:
        try:
            extra: dict[str, Any] = load_job_kind(spec.kind)(spec, paths).status_extra()
        except ConfigError:  # the kind's extra is not installed here: the job's own lines only
            extra = {}
        return job_status(paths, lease_ttl=spec.session.lease_ttl, extra=extra)
    return job_status(paths, lease_ttl=saved_session_spec(paths).lease_ttl)


def saved_spec(paths: JobPaths) -> JobSpecBase | None:
    """The spec the job last ran with (``spec.json`` in its home), or None if missing or no longer valid."""
    from orchestrator.app.jobfile import job_spec_adapter

    try:
        return job_spec_adapter().validate_python(json.loads(paths.spec_copy.read_text(encoding="utf-8")))  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None
