"""Command line: ``python -m orchestrator {run,status,validate,schema,checkpoints,auth,dataset pack} ...``, a thin
layer over the public API (``orchestrator.app.api``).

Exit codes (``orchestrator.core.errors``): 0 completed / ok; 75 paused, interrupted or a storage fault (fix the
named cause, then run the same command again to continue); 2 bad job file, input or usage (nothing changed);
3 another live session holds the job, or took it over from this one; 4 the job failed (see ``status``; fix the
cause, then ``run --retry``). No other code is returned: an unexpected error (a bug) prints its traceback and
exits 4.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.app import api
from orchestrator.app.jobfile import json_schema
from orchestrator.core.errors import EXIT_FAILED, EXIT_RESUMABLE, ConfigError, OrchestratorError, storage_error
from orchestrator.core.paths import JobPaths
from orchestrator.core.state import JobState, job_paths
from orchestrator.core.store_spec import PathStoreSpec

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
    run.add_argument("--new-lineage", action="store_true",
                     help="after a change the existing checkpoints cannot follow (class count, layers): start the "
                          "job's checkpoints afresh, moving the earlier ones aside into previous-lineages/ (kept)")
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
    auth = sub.add_parser("auth", help="sign in to Google Drive on a laptop; writes a token file for store.credentials")
    auth.add_argument("--client-secrets", type=Path, required=True,
                      help="OAuth client JSON (type 'Desktop app') from the Google Cloud console")
    auth.add_argument("--token", type=Path, default=Path("~/.config/orchestrator/drive-token.json"),
                      help="where to write the token file (default: %(default)s)")
    auth.add_argument("--port", type=int, default=0, help="localhost port for Google's redirect (default: any)")
    auth.add_argument("--no-browser", action="store_true", help="print the address instead of opening a browser")
    dataset = sub.add_parser("dataset", help="dataset tools").add_subparsers(dest="dataset_command", required=True)
    pack = dataset.add_parser("pack", help="lay a dataset out for Drive: a tree of small folders or one archive "
                                           "(DEST ending in .zip/.tar/.tar.gz/.tgz); resumable, idempotent")
    pack.add_argument("src", type=Path, help="the dataset folder (images with YOLO .txt or VOC .xml labels)")
    pack.add_argument("dest", type=Path, help="a new folder (tree) or an archive file name")
    pack.add_argument("--files-per-folder", type=int, default=1000, help="tree: files per folder (default 1000)")
    pack.add_argument("--checkpoint-every", type=int, default=2000, metavar="N",
                      help="archive: save a resume point every N files (and every 256 MB; default 2000)")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    spec = api.load_job(args.job)
    # the console handler lives for the run only: main() called in-process leaves logging as it found it
    result = api.run(spec, takeover=args.takeover, retry=args.retry, reopen=args.reopen, verbose=args.verbose,
                     new_lineage=args.new_lineage)
    if result.state is JobState.COMPLETED:
        print(f"job {spec.name} completed")
    elif result.reason == "lease-lost":
        print(f"job {spec.name}: another session took the job over (--takeover); this session stopped writing")
    elif result.reason == "signal":
        print(f"job {spec.name} stopped as you asked (saved at its last checkpoint); run the same command again "
              f"to continue")
    elif result.state is not JobState.FAILED:
        print(f"job {spec.name} paused ({result.reason}); run the same command again to continue")
    else:
        print(f"job {spec.name} failed: {result.reason}\nfix the cause, then: orchestrator run {args.job} --retry")
    return result.exit_code


def cmd_status(args: argparse.Namespace) -> int:
    from orchestrator.app.status import format_status

    report = api.status(args.job)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(format_status(report))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    spec = api.load_job(args.job)
    will_run = api.plan(spec)
    shown = spec.model_dump(mode="json")
    if will_run:  # e.g. a darknet job's cfg as it will train: the job's copy with the train: settings applied
        shown["will_run"] = will_run
    print(json.dumps(shown, indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from checkpoints.discovery import format_rows
    from checkpoints.job_checkpoints import rows_as_json
    from jobs.registry import load_job_kind

    spec = api.load_job(args.job)
    paths = job_paths(spec)
    if paths.local is None:  # no job id in a home yet: a fresh job, or a blank VM whose home was lost
        if isinstance(spec.store, PathStoreSpec) and spec.store.path is None:  # the store lived in that home
            print("[]" if args.json else f"job {spec.name}: it has not run yet; no checkpoints")
            return 0
        # the store is elsewhere (Drive API, another folder): list it; this machine has no local copies yet,
        # so the local side is a folder that cannot exist (its name holds no job id)
        paths = JobPaths(paths.home, local=spec.work_dir / f"{spec.name}-no-local-copies")
    catalog = load_job_kind(spec.kind)(spec, paths).checkpoints()
    rows = catalog.rows() if catalog is not None else []
    if args.json:
        print(json.dumps(rows_as_json(rows), indent=2, default=str))
    elif catalog is None:
        print(f"job {spec.name}: this job declares no checkpoints")
    else:
        print(f"job {spec.name}: checkpoints in {catalog.store} and {catalog.output_dir} (* = a resume would use)")
        print(format_rows(rows))
    return 0


def cmd_auth(args: argparse.Namespace) -> int:
    from checkpoints.drive_login import sign_in

    sign_in(args.client_secrets, args.token, port=args.port, open_browser=not args.no_browser)
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from jobs.data.pack import CHECKPOINT_BYTES, pack_dataset

    if args.checkpoint_every < 1:
        raise ConfigError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
    report = pack_dataset(args.src, args.dest, args.files_per_folder,
                          checkpoint_every=(args.checkpoint_every, CHECKPOINT_BYTES))
    change = f"{report.copied} files written" if report.copied else "already packed, nothing changed"
    print(f"packed {report.samples} samples ({report.files} files, {report.bytes / 1e6:.1f} MB) into {report.dest}: "
          f"{change}")
    return 0


COMMANDS: dict[str, Any] = {
    "run": cmd_run, "status": cmd_status, "validate": cmd_validate, "schema": cmd_schema,
    "checkpoints": cmd_checkpoints, "auth": cmd_auth, "dataset": cmd_dataset,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except OrchestratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `status | head`: the reader left; nothing to say
        _silence_stdout()
        return 0
    except OSError as exc:
        print(f"error: {storage_error(exc)}", file=sys.stderr)
        return EXIT_RESUMABLE
    except KeyboardInterrupt:
        print("stopped at once; work since the last checkpoint is lost. Run the same command again to resume",
              file=sys.stderr)
        return EXIT_RESUMABLE
    except Exception:  # noqa: BLE001 - a bug: keep its traceback, but exit with a documented code
        traceback.print_exc()
        print("error: internal error (a bug; please report it with the traceback above). The job's saved state "
              "is unchanged: run the same command again to resume", file=sys.stderr)
        return EXIT_FAILED


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's exit flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
