"""Resume overhead of a darknet job: seconds from `orchestrator run` to darknet launched.

Run by hand (not a test):  python bench/bench_darknet_resume.py [--images 1000]

Uses the stand-in darknet (tests/fakes/darknet) "built" from a small source tree whose Makefile copies it, so
the build step, the build cache, dataset preparation, checkpoint discovery/restore and the launch are the
real code paths; only darknet itself is simulated. Three runs of the same job:

1. cold: first run on a fresh machine (build, dataset preparation, no checkpoint);
2. warm: re-run on the same machine after kill -9 (steps skipped, resume from the local backup);
3. blank VM: work folder deleted after kill -9 (binary from the build cache, dataset prepared again,
   checkpoint restored from the store).

Baseline in the same run: `python -c "import orchestrator.app.cli"` (interpreter start-up and imports).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "darknet"


def make_job(root: Path, images: int) -> Path:
    src = root / "darknet-src"
    (src / "src").mkdir(parents=True)
    head = (REPO / "tests" / "darknet_patch" / "data" / "alexeyab.Makefile.head").read_text()
    (src / "Makefile").write_text(head + "\nall:\n\tcp tools/darknet darknet\n")
    (src / "tools").mkdir()
    fake = REPO / "tests" / "fakes" / "darknet"
    (src / "tools" / "darknet").write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    (src / "src" / "dark_cuda.c").write_text("int gpu_index = 0;\n")
    data = root / "data"
    data.mkdir()
    for i in range(images):
        (data / f"img{i:05d}.jpg").write_bytes(b"\xff\xd8" + os.urandom(64))
        (data / f"img{i:05d}.xml").write_text(
            "<annotation><size><width>64</width><height>64</height></size><object><name>box</name><bndbox>"
            "<xmin>4</xmin><ymin>8</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object></annotation>")
    cfg = (FIXTURES / "micro.cfg").read_text().replace("max_batches=250", "max_batches=100000")
    (root / "micro.cfg").write_text(cfg)
    (root / "job.yaml").write_text(
        "name: bench\nkind: darknet\ncheckpoint_dir: ./home\nwork_dir: ./work\n"
        f"darknet: {{source: {src}, build: {{gpu: false}}}}\n"
        "dataset: {path: ./data, format: voc, classes: [box]}\ncfg: ./micro.cfg\n"
        "env: {FAKE_DARKNET_SLEEP: '0.005'}\nsession: {budget: 1h, margin: 0, clock: process}\n")
    return root


def events(root: Path) -> list[dict]:
    path = root / "home" / "bench" / "journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def run_until_launch(root: Path, env: dict[str, str], wait_checkpoint: bool) -> float:
    launches = sum(e["event"] == "process_start" for e in events(root))
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        starts = [e for e in events(root) if e["event"] == "process_start"]
        if len(starts) > launches:
            launched = starts[-1]["t"] - started
            break
        if proc.poll() is not None:
            log = sorted((root / "home" / "bench" / "logs").glob("*.orchestrator.log"))
            raise SystemExit(f"orchestrator exited with {proc.returncode} before launching darknet:\n"
                             + (log[-1].read_text()[-2000:] if log else ""))
        time.sleep(0.01)
    checkpoints = sum(e["event"] == "checkpoint" for e in events(root))
    while wait_checkpoint and sum(e["event"] == "checkpoint" for e in events(root)) <= checkpoints:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    return launched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_DARKNET_REPO": str(REPO)}
    base = []
    for _ in range(3):
        t0 = time.time()
        subprocess.run([sys.executable, "-c", "import orchestrator.app.cli"], env=env, check=True)
        base.append(time.time() - t0)
    baseline = statistics.median(base)
    with tempfile.TemporaryDirectory() as tmp:
        root = make_job(Path(tmp), args.images)
        cold = run_until_launch(root, env, wait_checkpoint=True)
        warm = run_until_launch(root, env, wait_checkpoint=True)
        shutil.rmtree(root / "work")
        blank = run_until_launch(root, env, wait_checkpoint=False)
        resumed = [e for e in events(root) if e["event"] == "resume_from"]
        steps = [(e["event"], e.get("step"), e.get("seconds")) for e in events(root)
                 if e["event"] in ("step_done", "step_skipped")]
    print(json.dumps({
        "images": args.images, "baseline_import_s": round(baseline, 2), "cold_first_run_s": round(cold, 2),
        "warm_rerun_s": round(warm, 2), "blank_vm_rerun_s": round(blank, 2),
        "warm_over_baseline": round(warm / baseline, 1), "blank_over_baseline": round(blank / baseline, 1),
        "resumed_from": [(e["checkpoint"], e["counter"], e["where"]) for e in resumed], "steps": steps,
    }))


if __name__ == "__main__":
    main()
