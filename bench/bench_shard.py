"""Sharding 30,000 files into sub-folders of 1,000: one O(n) pass vs the seed's re-glob per sub-folder.

Run by hand (not a test):  python bench/bench_shard.py [--files 30000] [--per-folder 1000] [--repeat 3]

Both approaches hard-link the same source files (so the file system work per file is identical and the source
stays intact between runs); they differ only in how the files are listed. The seed notebook re-globbed the
source folder for every sub-folder and took the next slice of the sorted listing: O(n^2 / N) directory reads.
Prints one JSON line with the best-of-N seconds of each and the ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.darknet.dataset import copy_tree_sharded


def seed_approach(src: Path, dest: Path, per_folder: int, total: int) -> int:
    """The seed's way: for each sub-folder, glob the whole source again and take the next slice."""
    folders = (total + per_folder - 1) // per_folder
    for k in range(folders):
        files = sorted(glob.glob(str(src / "*.jpg")))
        chunk = files[k * per_folder : (k + 1) * per_folder]
        sub = dest / f"{k:05d}"
        sub.mkdir(parents=True, exist_ok=True)
        for f in chunk:
            os.link(f, sub / os.path.basename(f))
    return folders


def one_pass(src: Path, dest: Path, per_folder: int) -> int:
    files = sorted(src / name for name in os.listdir(src) if name.endswith(".jpg"))
    return copy_tree_sharded(files, dest, per_folder, mode="link")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=30_000)
    parser.add_argument("--per-folder", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for i in range(args.files):
            (src / f"img{i:06d}.jpg").write_bytes(b"x")
        timings: dict[str, float] = {}
        for name, run in (
            ("seed_reglob", lambda d: seed_approach(src, d, args.per_folder, args.files)),
            ("one_pass", lambda d: one_pass(src, d, args.per_folder)),
        ):
            best = float("inf")
            for r in range(args.repeat):
                dest = Path(tmp) / f"{name}-{r}"
                t0 = time.perf_counter()
                folders = run(dest)
                best = min(best, time.perf_counter() - t0)
                assert sum(len(os.listdir(dest / f)) for f in os.listdir(dest)) == args.files
                assert folders == len(os.listdir(dest))
                shutil.rmtree(dest)
            timings[name] = best
    print(json.dumps({
        "files": args.files, "per_folder": args.per_folder, "repeat": args.repeat,
        "seed_reglob_s": round(timings["seed_reglob"], 3), "one_pass_s": round(timings["one_pass"], 3),
        "speedup": round(timings["seed_reglob"] / timings["one_pass"], 1),
    }))


if __name__ == "__main__":
    main()
