"""Child process for the kill -9 tests: process one video with the real detector, as a job session would.

usage: python run_pipeline.py WEIGHTS VIDEO FOLDER BATCH CHUNK   (store, staging and output inside FOLDER)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch

from jobs.face_detection.detector import RetinaFaceDetector
from jobs.face_detection.weights import load_retinaface
from tests.jobs.face_detection.conftest import run_local


def main(argv: list[str]) -> int:
    weights, video, folder, batch, chunk = argv
    torch.set_num_threads(1)
    detector = RetinaFaceDetector(load_retinaface("mobilenet0.25", Path(weights)), torch.device("cpu"))
    result = run_local(detector, [Path(video)], Path(folder), batch_size=int(batch), chunk_frames=int(chunk))
    status = result.outcomes[Path(video).stem].status
    print(status, flush=True)
    return 0 if status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
