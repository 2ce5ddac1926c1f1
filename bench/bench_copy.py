"""Benchmark: publishing a checkpoint into the path store vs ``cp``, measured in the same run.

    python bench/bench_copy.py [--size-mb 256] [--rounds 3] [--dir /path/on/target/fs]

For each round (alternating order) it times:
  * ``cp SRC DEST``                      - the baseline (no fsync: data may still be in the page cache)
  * ``cp SRC DEST && sync DEST``         - the same made durable, as the store's publish is
  * ``PathStore.upload(SRC, key)``       - in a fresh subprocess: temp name + kernel copy + fsync + rename
Every measurement writes a new file (deleted afterwards) and starts after a global ``sync`` so none pays for the previous one's writeback. It reports
median throughput, the ratios store/cp and store/(cp+sync), and the store process's peak extra
memory (VmHWM after the copy minus VmHWM after imports, from /proc/self/status).
Target: >= 0.9x cp throughput and <= 64 MB extra peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

from checkpoints.path_store import PathStore
store = PathStore(Path(sys.argv[3]))
before = hwm_kb()
t0 = time.perf_counter()
store.upload(Path(sys.argv[2]), sys.argv[4])
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "extra_peak_kb": hwm_kb() - before, "hwm_before_kb": before}))
"""


def _make_source(path: Path, size: int) -> None:
    chunk = os.urandom(8 << 20)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            fh.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        fh.flush()
        os.fsync(fh.fileno())


def _time_cmd(argv: list[list[str]]) -> float:
    t0 = time.perf_counter()
    for cmd in argv:
        subprocess.run(cmd, check=True)
    return time.perf_counter() - t0


def _time_store(src: Path, root: Path, key: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), str(src), str(root), key],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where source and copies live (default: a temp dir)")
    args = parser.parse_args(argv)
    size = args.size_mb << 20
    base = Path(tempfile.mkdtemp(prefix="bench copy ", dir=args.dir))
    try:
        src = base / "micro 256.weights"
        _make_source(src, size)
        cp_s, cps_s, store_s, extra_kb = [], [], [], []
        for r in range(args.rounds):
            runs = ["cp", "cp+sync", "store"] if r % 2 == 0 else ["store", "cp+sync", "cp"]
            for what in runs:
                os.sync()  # start each measurement with no dirty pages left by the previous one
                if what == "cp":
                    dest = base / "cp.weights"
                    cp_s.append(_time_cmd([["cp", str(src), str(dest)]]))
                    dest.unlink()
                elif what == "cp+sync":
                    dest = base / "cp.weights"
                    cps_s.append(_time_cmd([["cp", str(src), str(dest)], ["sync", str(dest)]]))
                    dest.unlink()
                else:
                    child = _time_store(src, base / "store", "checkpoints/00000/micro 256.weights")
                    store_s.append(child["seconds"])
                    extra_kb.append(child["extra_peak_kb"])
                    shutil.rmtree(base / "store")
        mb = size / (1 << 20)

        def rate(values: list[float]) -> float:
            return mb / statistics.median(values)

        result: dict[str, object] = {
            "size_mb": mb,
            "rounds": args.rounds,
            "cp_mb_s": round(rate(cp_s), 1),
            "cp_sync_mb_s": round(rate(cps_s), 1),
            "store_mb_s": round(rate(store_s), 1),
            "store_vs_cp": round(rate(store_s) / rate(cp_s), 3),
            "store_vs_cp_sync": round(rate(store_s) / rate(cps_s), 3),
            "store_extra_peak_mb": round(max(extra_kb) / 1024, 2),
            "seconds": {
                "cp": [round(x, 3) for x in cp_s],
                "cp+sync": [round(x, 3) for x in cps_s],
                "store": [round(x, 3) for x in store_s],
            },
        }
        print(json.dumps(result, indent=2))
        ok = rate(store_s) / rate(cp_s) >= 0.9 and max(extra_kb) / 1024 <= 64
        print("targets (>= 0.9x cp, <= 64 MB extra):", "met" if ok else "NOT met")
        return 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
