"""Child process for the kill -9 tests: process one video with the real detector, as a job session would.

usage: python run_pipeline.py WEIGHTS VIDEO OUT_DIR BATCH CHUNK
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import torch

from jobs.face_detection.detector import RetinaFaceDetector
from jobs.face_detection.partial import OutputFiles
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings
from jobs.face_detection.weights import load_retinaface


def main(argv: list[str]) -> int:
    weights, video, out_dir, batch, chunk = argv
    torch.set_num_threads(1)
    detector = RetinaFaceDetector(load_retinaface("mobilenet0.25", Path(weights)), torch.device("cpu"))
    pipeline = FacePipeline(detector, PipelineSettings(batch_size=int(batch), chunk_frames=int(chunk)), "child")
    result = pipeline.process(Path(video), OutputFiles(Path(out_dir), Path(video).stem))
    print(result.status, flush=True)
    return 0 if result.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
