"""Command line: ``python -m orchestrator {run,status,validate,schema,checkpoints,dataset pack} ...``.

Exit codes: 0 completed / ok, 75 paused (run the same command again to continue), 2 bad job file or usage,
3 another live session holds the job, 4 the job failed (see ``status``; ``run --retry`` resumes it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.jobfile import json_schema, load_job_file
from orchestrator.logs import setup_console_logging
from orchestrator.paths import JobPaths
from orchestrator.spec import JobSpecBase
from orchestrator.state import JobState

log = logging.getLogger("orchestrator")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orchestrator", description="Resumable jobs for GPUs that vanish.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the job, or resume it where it stopped (same command every time)")
    run.add_argument("job", type=Path, help="the job file (job.yaml)")
    run.add_argument("--takeover", action="store_true", help="take the job over from a session that holds it")
    run.add_argument("--retry", action="store_true", help="resume a failed job")
    run.add_argument("--reopen", action="store_true",
                     help="continue a completed job with changed settings (e.g. a higher max_batches)")
    run.add_argument("-v", "--verbose", action="store_true")
    status = sub.add_parser("status", help="where the job stands")
    status.add_argument("job", type=Path, help="the job file, or the job's folder in checkpoint_dir")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    validate = sub.add_parser("validate", help="check a job file; print the normalized spec or the errors")
    validate.add_argument("job", type=Path)
    sub.add_parser("schema", help="print the job file's JSON Schema (for editor completion)")
    cks = sub.add_parser("checkpoints", help="list the job's checkpoints and which one a resume would use")
    cks.add_argument("job", type=Path, help="the job file (job.yaml)")
    cks.add_argument("--json", action="store_true", help="machine-readable output")
    dataset = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="dataset_command", required=True)
    pack = dataset.add_parser("pack", help="lay a dataset out for Drive: a tree of small folders or one archive "
                                           "(DEST ending in .zip/.tar/.tar.gz/.tgz); resumable, idempotent")
    pack.add_argument("src", type=Path, help="the dataset folder (images with YOLO .txt or VOC .xml labels)")
    pack.add_argument("dest", type=Path, help="a new folder (tree) or an archive file name")
    pack.add_argument("--files-per-folder", type=int, default=1000, help="tree: files per folder (default 1000)")
    return parser


def _spec_and_paths(target: Path) -> tuple[JobSpecBase | None, JobPaths]:
    if target.is_dir():
        paths = JobPaths.for_home(target)
        if not paths.state.exists() and not paths.state_prev.exists() and not paths.spec_copy.exists():
            raise ConfigError(f"{target}: not a job folder (no state.json); give the job file or the job's folder")
        return None, paths
    spec = load_job_file(target)
    return spec, JobPaths.for_spec(spec)


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.runner import JobRunner

    setup_console_logging(args.verbose)
    spec = load_job_file(args.job)
    result = JobRunner(spec).run(takeover=args.takeover, retry=args.retry, reopen=args.reopen)
    if result.state is JobState.COMPLETED:
        print(f"job {spec.name} completed")
    elif result.state is not JobState.FAILED:
        print(f"job {spec.name} paused ({result.reason}); run the same command again to continue")
    else:
        print(f"job {spec.name} failed: {result.reason}\nfix the cause, then: orchestrator run {args.job} --retry")
    return result.exit_code


def _saved_lease_ttl(paths: JobPaths) -> float:
    try:
        return float(json.loads(paths.spec_copy.read_text())["session"]["lease_ttl"])
    except (OSError, ValueError, KeyError, TypeError):
        return 600.0


def _job_kind(spec: JobSpecBase, paths: JobPaths) -> Any:
    from jobs.registry import load_job_kind

    return load_job_kind(spec.kind)(spec, paths)


def cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.status import format_status, job_status

    spec, paths = _spec_and_paths(args.job)
    ttl = spec.session.lease_ttl if spec is not None else _saved_lease_ttl(paths)
    extra = _job_kind(spec, paths).status_extra() if spec is not None else None
    report = job_status(paths, lease_ttl=ttl, extra=extra)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_status(report))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_job_file(args.job)
    print(json.dumps(spec.model_dump(mode="json"), indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from checkpoints.discovery import format_rows
    from checkpoints.job_checkpoints import rows_as_json

    spec = load_job_file(args.job)
    catalog = _job_kind(spec, JobPaths.for_spec(spec)).checkpoints()
    rows = catalog.rows() if catalog is not None else []
    if args.json:
        print(json.dumps(rows_as_json(rows), indent=2, default=str))
    elif catalog is None:
        print(f"job {spec.name}: this job declares no checkpoints")
    else:
        print(f"job {spec.name}: checkpoints in {catalog.store} and {catalog.output_dir} (* = a resume would use)")
        print(format_rows(rows))
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from jobs.data.pack import pack_dataset

    report = pack_dataset(args.src, args.dest, args.files_per_folder)
    change = f"{report.copied} files written" if report.copied else "already packed, nothing changed"
    print(f"packed {report.samples} samples ({report.files} files, {report.bytes / 1e6:.1f} MB) into {report.dest}: "
          f"{change}")
    return 0


COMMANDS: dict[str, Any] = {
    "run": cmd_run, "status": cmd_status, "validate": cmd_validate, "schema": cmd_schema,
    "checkpoints": cmd_checkpoints, "dataset": cmd_dataset,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
