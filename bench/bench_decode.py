"""Null-detector pipeline vs decode-only throughput on the same cores, measured side by side.

Run by hand (not a test):  python bench/bench_decode.py [--videos 4] [--frames 150] [--workers 2] [--repeat 3]

The inputs are MPEG-4 videos (640x480). (a) decode-only: ``VideoSource.frames`` over every input, ``--workers``
inputs at once (each a thread with its own capture: what the cores can decode); (b) the pipeline:
``FacePipeline.process`` over the same inputs with a detector that finds no faces, ``--workers`` inputs at once
(``process`` is safe to call from several threads: detector calls are serialised, as on one GPU), with its
writer (annotated MJPG frames, detections, chunk commits); (c) the pipeline with one input at a time.
Interleaved, best of ``--repeat``. Prints one JSON line with frames/s and the ratios to (a).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobs.face_detection.detections import Face
from jobs.face_detection.executor import LocalExecutor, process_inputs
from jobs.face_detection.ledger import FaceLedger
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings
from jobs.face_detection.video_source import VideoSource

ROOT = Path(__file__).resolve().parents[1]


class NullDetector:
    """Finds no faces, instantly: what the pipeline achieves when the detector (a GPU) is never the bottleneck."""

    name = "null"

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        return [[] for _ in frames]


def make_video(path: Path, frames: int, seed: int) -> Path:
    image = cv2.imread(str(ROOT / "tests" / "data" / "astronaut.jpg"))
    assert image is not None
    photo = cv2.resize(image, (300, 300))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (640, 480))
    rng = np.random.default_rng(seed)
    for i in range(frames):
        canvas = rng.integers(40, 80, (480, 640, 3), dtype=np.uint8)
        x = (7 * i + 31 * seed) % 340
        canvas[20:320, x:x + 300] = photo
        writer.write(canvas)
    writer.release()
    return path


def decode_only(videos: list[Path], workers: int) -> float:
    def one(path: Path) -> int:
        source = VideoSource(path)
        try:
            return sum(1 for _ in source.frames(0, 1))
        finally:
            source.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        frames = sum(pool.map(one, videos))
    return frames / (time.perf_counter() - t0)


def pipeline_run(videos: list[Path], out: Path, workers: int) -> float:
    settings = PipelineSettings(batch_size=8)  # defaults: 256-frame chunks
    pipeline = FacePipeline(NullDetector(), settings, "null")
    out.mkdir(parents=True)

    def one(iv: tuple[int, Path]) -> int:  # each input's chunks committed through its own path store
        _, outcomes, _ = process_inputs(LocalExecutor(pipeline), FaceLedger.in_folder(out / f"v{iv[0]}"), [iv[1]],
                                        pipeline.fingerprint, 1, settings.frames_per_chunk)
        assert outcomes[iv[1].stem].status == "done", outcomes
        return outcomes[iv[1].stem].frames

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        frames = sum(pool.map(one, enumerate(videos)))
    return frames / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp_s:
        tmp = Path(tmp_s)
        videos = [make_video(tmp / f"clip{i}.mp4", args.frames, i) for i in range(args.videos)]
        dec, many, single = [], [], []
        for r in range(args.repeat):
            dec.append(decode_only(videos, args.workers))
            many.append(pipeline_run(videos, tmp / f"many-{r}", args.workers))
            single.append(pipeline_run(videos, tmp / f"single-{r}", 1))
    best = max(dec)
    print(json.dumps({
        "videos": args.videos, "frames_each": args.frames, "size": "640x480 mpeg4", "workers": args.workers,
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "decode_only_fps": round(best, 1), "pipeline_null_fps": round(max(many), 1),
        "pipeline_null_one_at_a_time_fps": round(max(single), 1),
        "pipeline_vs_decode": round(max(many) / best, 2), "one_at_a_time_vs_decode": round(max(single) / best, 2),
    }))


if __name__ == "__main__":
    main()
