"""Face throughput with the job's home (store and outputs) on the slow Drive mount double: chunks committed by
the writer itself vs by a commit thread (``commit_ahead``), against the home on local disk, in one run.

Run by hand (not a test; needs /dev/fuse and fuse3, see scripts/setup.sh):

    python bench/bench_commit.py [--videos 2] [--frames 1024] [--open-latency 0.1] [--repeat 2]

A chunk commit is a few files through the store (the chunk's object, the manifest and its previous copy, each
written to a temp name, fsynced and renamed): on the Colab mount every open is a round trip. The pipeline runs
as the job runs it (``LocalExecutor`` over one ``FaceLedger``; default 256-frame chunks; the annotated MP4)
with a detector that finds no faces instantly, standing in for a GPU: a few hundred frames per second, bound
by decoding and encoding on these cores. Variants: (1) home on local disk; (2) home on the mount,
``commit_ahead: 0`` (the writer thread commits each chunk before it goes on: the seed's behaviour);
(3) home on the mount, ``commit_ahead: 4`` (the default: a commit thread per input, the next chunks made
meanwhile). The inputs are on local disk in all three (as after prefetching). Interleaved, best of
``--repeat`` each. Prints one JSON line with frames/s and the ratios to (1).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_decode import make_video, null_pipeline_fps
from checkpoints.job_checkpoints import JobCheckpoints
from checkpoints.path_store import PathStore
from jobs.face_detection.ledger import FaceLedger
from jobs.face_detection.paths import FacePaths
from jobs.face_detection.pipeline import PipelineSettings
from orchestrator.core.paths import JobPaths
from tests.mounts import mount


def run(videos: list[Path], home: Path, work: Path, commit_ahead: int) -> float:
    """One pass over ``videos`` with the job home (store, outputs) in ``home``; frames per second."""
    settings = PipelineSettings(batch_size=8, commit_ahead=commit_ahead)  # 256-frame chunks, annotated MP4
    paths = FacePaths(JobPaths(home=home, local=work))
    return null_pipeline_fps(videos, settings, 1, lambda: FaceLedger(
        JobCheckpoints(PathStore(home / "store"), paths.staging), paths).open())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--open-latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-commit-") as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "videos").mkdir()
        videos = [make_video(tmp / "videos" / f"clip{i}.mp4", args.frames, i) for i in range(args.videos)]
        runs: dict[str, list[float]] = {"local": [], "mount_writer_commits": [], "mount_commit_thread": []}
        (tmp / "drive").mkdir()
        with mount(tmp / "drive", tmp / "vm cache", open_latency_s=args.open_latency) as m:
            for r in range(args.repeat):  # interleaved, best of each: the machine's speed drifts
                runs["local"].append(run(videos, tmp / f"local-{r}", tmp / f"work-l{r}", 4))
                runs["mount_writer_commits"].append(run(videos, m.path / f"w-{r}", tmp / f"work-w{r}", 0))
                runs["mount_commit_thread"].append(run(videos, m.path / f"c-{r}", tmp / f"work-c{r}", 4))
        best = {k: max(v) for k, v in runs.items()}
        print(json.dumps({
            "videos": args.videos, "frames_each": args.frames, "size": "640x480 mpeg4", "chunk_frames": 256,
            "mount": {"open_latency_s": args.open_latency}, "repeat": args.repeat,
            "fps_best": {k: round(v, 1) for k, v in best.items()},
            "ratio_to_local": {k: round(v / best["local"], 3) for k, v in best.items()},
        }))


if __name__ == "__main__":
    main()
