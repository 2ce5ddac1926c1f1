"""Shared fixtures: a command job in an awkward folder (spaces, unicode) with a deterministic trainer, and the
CLI run in-process through ``main(argv)`` (:func:`cli`) or as ``python -m orchestrator`` (:func:`cli_process`)."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.core.logs import ROOT_LOGGER

pytest_plugins = ["pytester"]  # tests/checkpoints/test_contract_package.py runs a store author's test module

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"

#: A small "trainer": counts to N, one checkpoint per step (written atomically), a deterministic result
#: computed from the checkpointed state, and done.txt at the end. Resumes from the checkpoint it is given.
TRAINER = textwrap.dedent('''
    import hashlib, os, sys, time
    out, ckpt = sys.argv[1], sys.argv[2]
    steps = int(os.environ.get("STEPS", "10"))
    delay = float(os.environ.get("STEP_SECONDS", "0.05"))
    fail_at = int(os.environ.get("FAIL_AT", "0"))
    step, acc = 0, "seed"
    if ckpt:
        step_s, acc = open(ckpt).read().split()
        step = int(step_s)
    print(f"resuming at {step}" if ckpt else "fresh start", flush=True)
    while step < steps:
        time.sleep(delay)
        step += 1
        if step == fail_at:
            print("boom: simulated crash", flush=True)
            sys.exit(3)
        acc = hashlib.sha256(f"{acc}:{step}".encode()).hexdigest()[:16]
        tmp = os.path.join(out, f".ckpt-{step}.tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{step} {acc}")
            fh.flush(); os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(out, f"ckpt-{step:04d}.txt"))
        print(f"step {step}/{steps} acc={acc}", flush=True)
    with open(os.path.join(out, "result.tmp"), "w") as fh:
        fh.write(acc)
    os.replace(os.path.join(out, "result.tmp"), os.path.join(out, "result.txt"))
    open(os.path.join(out, "done.txt"), "w").close()
''')


def job_yaml(name: str = "count", budget: str = "1h", extra: str = "") -> str:
    return textwrap.dedent(f'''\
        name: {name}
        kind: command
        checkpoint_dir: ./jobs
        work_dir: ./work
        command: ["{sys.executable}", "train.py", "{{output_dir}}", "{{latest_checkpoint}}"]
        checkpoints: "ckpt-*.txt"
        done_when: done.txt
        progress: {{pattern: 'step (?P<counter>\\d+)/(?P<total>\\d+)'}}
        session: {{budget: {budget}, margin: 0, heartbeat: 1s}}
        restart: {{max_restarts: 2, backoff: 0.1s}}
        ''') + extra


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A folder holding train.py, job.yaml and an (empty) checkpoint_dir, under an awkward path."""
    folder = tmp_path / "my jobs ü"
    (folder / "jobs").mkdir(parents=True)
    (folder / "train.py").write_text(TRAINER)
    (folder / "job.yaml").write_text(job_yaml())
    return folder


@dataclass(frozen=True)
class CliResult:
    """What a user sees of one CLI command: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@contextmanager
def _process_state_restored(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` for the call; afterwards put back cwd, the environment, signal handlers and our loggers."""
    cwd = os.getcwd()
    saved_env = {key: os.environ.get(key) for key in env}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    logger = logging.getLogger(ROOT_LOGGER)
    saved_logging = (logger.level, list(logger.handlers), logger.propagate)
    saved_tempdir = tempfile.tempdir
    os.environ.update(env)
    if "TMPDIR" in env:
        tempfile.tempdir = None  # gettempdir() caches its answer: let it see the new TMPDIR
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        tempfile.tempdir = saved_tempdir
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for added in [h for h in logger.handlers if h not in saved_logging[1]]:
            logger.removeHandler(added)
            added.close()
        logger.handlers[:] = saved_logging[1]
        logger.setLevel(saved_logging[0])
        logger.propagate = saved_logging[2]


def cli(job_dir: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run ``orchestrator ARGS`` through ``main(argv)`` in this process, in ``job_dir``, as a user would.

    stdout, stderr and the exit code are captured (an ``argparse`` usage error's ``SystemExit`` included);
    ``env`` is added to the environment for the call (the job's child processes inherit it). The working
    directory, environment, signal handlers and logging are restored afterwards. Tests that need a separate
    process (kill -9, signals, two sessions at once, ``python -m orchestrator`` itself) use
    :func:`cli_process` or :func:`popen_cli`.
    """
    from orchestrator.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _process_state_restored(env or {}), redirect_stdout(out), redirect_stderr(err):
        os.chdir(job_dir)
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_process(job_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
                ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchestrator ARGS`` in ``job_dir`` in a process of its own (end-to-end tests)."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=job_dir, capture_output=True,
                          text=True, timeout=timeout, check=False, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def popen_cli(job_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=job_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
