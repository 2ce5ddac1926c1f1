"""Null-detector pipeline vs decode-only throughput on the same cores, measured side by side.

Run by hand (not a test):  python bench/bench_decode.py [--videos 4] [--frames 600] [--workers 2] [--repeat 3]

The inputs are MPEG-4 videos (640x480, 24 s each by default). (a) decode-only: ``VideoSource.frames`` over every
input, ``--workers`` inputs at once (each a thread with its own capture: what the cores can decode); (b) the
pipeline as the job runs it: ``LocalExecutor(decoders=--workers)`` over the same inputs (one ledger; each input
decoded in its own thread; detector calls take turns, as on one GPU) with a detector that finds no faces and
``video: none`` (detections only: nothing drawn or encoded; detections lines, chunk commits, publishing);
(c) the same with the annotated video (``video: mp4``, the default: every frame drawn and H.264 encoded);
(d) ``video: none`` with one input at a time (``decoders: 1``). This machine's speed drifts by several per
cent from run to run, so each pipeline run is paired with a decode-only run made just before it, and the
ratio is the median over ``--repeat`` pairs (range shown). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
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


def null_pipeline_fps(videos: list[Path], settings: PipelineSettings, decoders: int,
                      open_ledger: Callable[[], FaceLedger]) -> float:
    """Frames per second of the job's path with the null detector: ``LocalExecutor`` with ``decoders`` inputs
    at once over the ledger ``open_ledger`` opens (its opening timed too, as a session's start)."""
    pipeline = FacePipeline(NullDetector(), settings, "null")
    t0 = time.perf_counter()
    _, outcomes, _ = process_inputs(LocalExecutor(pipeline, decoders=decoders), open_ledger(), videos,
                                    pipeline.fingerprint, 1, settings.frames_per_chunk)
    elapsed = time.perf_counter() - t0
    assert all(o.status == "done" for o in outcomes.values()), outcomes
    return sum(o.frames for o in outcomes.values()) / elapsed


def pipeline_run(videos: list[Path], out: Path, workers: int, video_format: str) -> float:
    """The job's path: one ledger in ``out``, ``workers`` inputs at once; defaults: 256-frame chunks."""
    return null_pipeline_fps(videos, PipelineSettings(batch_size=8, video_format=video_format), workers,
                             lambda: FaceLedger.in_folder(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp_s:
        tmp = Path(tmp_s)
        videos = [make_video(tmp / f"clip{i}.mp4", args.frames, i) for i in range(args.videos)]
        runs: dict[str, list[float]] = {"decode": [], "none": [], "mp4": [], "none_one_at_a_time": []}
        ratios: dict[str, list[float]] = {"none": [], "mp4": [], "none_one_at_a_time": []}
        for r in range(args.repeat):  # each pipeline run beside a decode-only run of the same moment
            for key, workers, video in (("none", args.workers, "none"), ("mp4", args.workers, "mp4"),
                                        ("none_one_at_a_time", 1, "none")):
                decoded = decode_only(videos, args.workers)
                made = pipeline_run(videos, tmp / f"{key}-{r}", workers, video)
                runs["decode"].append(decoded)
                runs[key].append(made)
                ratios[key].append(made / decoded)
    print(json.dumps({
        "videos": args.videos, "frames_each": args.frames, "size": "640x480 mpeg4", "workers": args.workers,
        "cpus": len(os.sched_getaffinity(0)), "repeat": args.repeat,
        "fps_median": {k: round(statistics.median(v), 1) for k, v in runs.items()},
        "ratio_to_decode_only_median": {k: round(statistics.median(v), 3) for k, v in ratios.items()},
        "ratio_range": {k: [round(min(v), 2), round(max(v), 2)] for k, v in ratios.items()},
    }))


if __name__ == "__main__":
    main()
