"""Blank-VM dataset staging on the slow Drive mount double: one folder, a packed tree, one archive.

Run by hand (not a test; needs /dev/fuse and fuse3, see scripts/setup.sh):

    python bench/bench_staging.py [--images 15000] [--open-latency 0.001] [--list-limit 7000] [--repeat 2]

The "Drive" folder holds the same dataset three ways: ``flat/`` (every image and label in one folder, as the
seed kept it), ``packed/`` (``orchestrator dataset pack`` tree, 1,000 files per folder) and ``data.zip`` /
``data.tar.gz`` (``dataset pack`` archives). Each is staged as on a fresh VM (an empty local folder) through the
mount double (``tests.mounts``) with a per-open latency, a per-entry listing cost and EIO above ``--list-limit``:

- flat: the darknet kind's dataset preparation, expected to fail with the EIO message telling what to do;
- packed: the darknet kind's preparation straight from the mounted tree (an open per file);
- archive: ``jobs.data.stage_archive`` (one sequential copy off the mount, then checked extraction; a .tar.gz
  decompressed by the ``gzip`` program) against the baseline
  ``cp`` of the archive to local disk then ``unzip -q`` / ``tar xzf``, best of ``--repeat`` each, same run.

Prints one JSON line; docs/benchmarks.md records the figures and this command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.darknet.dataset import prepare_dataset
from jobs.data import pack_dataset, stage_archive
from orchestrator.core.errors import ConfigError
from tests.mounts import mount


def make_dataset(folder: Path, images: int, size: int) -> None:
    folder.mkdir(parents=True)
    for i in range(images):
        (folder / f"img{i:05d}.jpg").write_bytes(os.urandom(size))  # incompressible, like JPEG
        (folder / f"img{i:05d}.txt").write_text(f"0 0.5 0.5 0.{i % 9 + 1} 0.2\n")


def timed(fn) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=15_000)
    parser.add_argument("--image-bytes", type=int, default=6_000)
    parser.add_argument("--open-latency", type=float, default=0.001)
    parser.add_argument("--list-base", type=float, default=0.01)
    parser.add_argument("--list-per-entry", type=float, default=0.00002)
    parser.add_argument("--list-limit", type=int, default=7000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-tree", action="store_true", help="skip the packed tree (one open per file: slow)")
    parser.add_argument("--formats", default="zip,tar.gz", help="archives to stage: zip, tar.gz or both")
    args = parser.parse_args()
    result: dict[str, object] = {"images": args.images, "image_bytes": args.image_bytes,
                                 "mount": {"open_latency_s": args.open_latency, "list_base_s": args.list_base,
                                           "list_cost_per_entry_s": args.list_per_entry,
                                           "list_limit": args.list_limit}}
    with tempfile.TemporaryDirectory(prefix="bench-staging-") as tmp_s:
        tmp = Path(tmp_s)
        drive = tmp / "drive"
        make_dataset(drive / "flat", args.images, args.image_bytes)
        pack_dataset(drive / "flat", drive / "packed", 1000)
        for name in ("data.zip", "data.tar.gz"):
            pack_dataset(drive / "flat", drive / name, 1000)
        result["archive_mb"] = {n: round((drive / n).stat().st_size / 1e6, 1) for n in ("data.zip", "data.tar.gz")}
        behaviour = {"open_latency_s": args.open_latency, "list_base_s": args.list_base,
                     "list_cost_per_entry_s": args.list_per_entry, "list_limit": args.list_limit}
        with mount(drive, tmp / "vm", **behaviour) as m:
            local = tmp / "local"

            def fresh() -> Path:
                shutil.rmtree(local, ignore_errors=True)
                local.mkdir()
                return local

            # one folder: the job must fail with what to do
            fresh()
            t0 = time.perf_counter()
            try:
                prepare_dataset(m.path / "flat", local / "dataset", "yolo", ["box"], link="hardlink")
                result["flat"] = {"ok": True, "seconds": round(time.perf_counter() - t0, 2)}
            except ConfigError as exc:
                result["flat"] = {"ok": False, "seconds": round(time.perf_counter() - t0, 2), "error": str(exc)}

            if not args.skip_tree:
                fresh()
                t, _ = timed(lambda: prepare_dataset(m.path / "packed", local / "dataset", "yolo", ["box"],
                                                     link="hardlink"))
                result["packed_tree_prepare_s"] = round(t, 2)

            for name, baseline_cmd in (("data.zip", ["unzip", "-q"]), ("data.tar.gz", ["tar", "xzf"])):
                if name.split(".", 1)[1] not in args.formats.split(","):
                    continue
                ours, base, prep = float("inf"), float("inf"), float("inf")
                for _ in range(args.repeat):
                    fresh()
                    t0 = time.perf_counter()
                    staged = stage_archive(m.path / name, local / "stage")
                    ours = min(ours, time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    prepare_dataset(staged.root, local / "dataset", "yolo", ["box"], link="hardlink")
                    t = time.perf_counter() - t0
                    prep = min(prep, t)
                    fresh()
                    t0 = time.perf_counter()
                    shutil.copyfile(m.path / name, local / name)
                    (local / "x").mkdir()
                    cmd = [*baseline_cmd, str(local / name)] + (["-d", str(local / "x")] if "unzip" in baseline_cmd
                                                                  else ["-C", str(local / "x")])
                    subprocess.run(cmd, check=True)
                    base = min(base, time.perf_counter() - t0)
                result[name] = {"stage_archive_s": round(ours, 2), "copy_then_extract_s": round(base, 2),
                                "ratio": round(ours / base, 2), "then_prepare_s": round(prep, 2)}
            result["mount_stats"] = m.stats()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
