"""How long `orchestrator status` takes on a job with many journal events.

Builds a job home with N journal events (default 10,000) and a matching state file, then times the real CLI
(`python -m orchestrator status <folder> --json`) against the baseline of starting Python and importing the
CLI module alone (`python -c "import orchestrator.app.cli"`), both measured in this run.

    python bench/bench_status.py [--events 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orchestrator.core.journal import Journal
from orchestrator.core.paths import JobPaths
from orchestrator.core.state import JobRecord, JobState, SessionRecord, StateStore


def build_job(home: Path, events: int) -> None:
    paths = JobPaths(home=home, local=home / "w")
    home.mkdir(parents=True)
    journal = Journal(paths.journal)
    with open(paths.journal, "w") as fh:  # bulk-write: the bench measures reading, not 10k fsyncs
        fh.writelines(f'{{"t": {1e9 + i}, "event": "checkpoint", "name": "ckpt-{i}.pt", "counter": {i}}}\n'
                      for i in range(events))
    record = JobRecord(job=home.name, kind="command", state=JobState.PAUSED, reason="deadline")
    for i in range(50):
        record.sessions.append(SessionRecord(id=f"s{i}", index=i + 1, host="vm", pid=1, started=1e9 + i * 100,
                                             ended=1e9 + i * 100 + 90, end_reason="deadline"))
    record.progress.counter, record.progress.total = events, events * 2
    StateStore(paths, journal).save(record)


def timed(argv: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=env)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "bench-job"
        build_job(home, args.events)
        baseline = timed([sys.executable, "-c", "import orchestrator.app.cli"], args.repeat)
        status = timed([sys.executable, "-m", "orchestrator", "status", str(home), "--json"], args.repeat)
        size = (home / "journal.jsonl").stat().st_size
    b, s = statistics.median(baseline), statistics.median(status)
    print(f"journal: {args.events} events, {size / 1e6:.2f} MB")
    print(f"baseline (python + import orchestrator.app.cli): median {b * 1000:.0f} ms")
    print(f"orchestrator status --json:                 median {s * 1000:.0f} ms")
    print(f"status work beyond start-up: {(s - b) * 1000:.0f} ms; ratio status/baseline = {s / b:.2f}")


if __name__ == "__main__":
    main()
