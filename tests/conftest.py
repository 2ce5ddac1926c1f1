"""Shared fixtures: a command job in an awkward folder (spaces, unicode) with a deterministic trainer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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


def cli(job_dir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    """Run ``python -m orchestrator ARGS`` in ``job_dir`` as a user would."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=job_dir, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def popen_cli(job_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=job_dir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
