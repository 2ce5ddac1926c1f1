"""Face detectors behind one small interface: a batch of same-size BGR frames in, faces per frame out.

``RetinaFaceDetector`` runs the network on the whole batch at once, then decodes, thresholds and suppresses
on the device in torch (priors cached per input size); ``HaarDetector`` lives in ``haar.py``. Coordinates are
pixels of the frames given; the pipeline maps them back to original-frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch

from jobs.face_detection.decode import decode_boxes, decode_landmarks
from jobs.face_detection.detections import Face
from jobs.face_detection.model import BGR_MEAN, RetinaFace
from jobs.face_detection.nms import nms
from jobs.face_detection.priors import cached_priors

_BGR_MEAN_SCALAR = (*BGR_MEAN, 0.0)  # OpenCV scalars have four channels


@dataclass(frozen=True)
class Thresholds:
    """Post-processing settings; the defaults are the reference script's."""

    confidence: float = 0.02
    top_k: int = 5000
    nms: float = 0.4
    keep_top_k: int = 750
    visualization: float = 0.6


class FaceDetector(Protocol):
    name: str

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        """Faces (score >= the visualisation threshold) for each frame of a batch of same-size BGR uint8 frames."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def preprocess(frames: list[np.ndarray], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """BGR uint8 HxWx3 frames -> float NCHW batch minus the BGR mean, no scaling (as the reference).

    The batch is laid out channels-last in memory (the frames' own NHWC order, so no transpose copy), which
    oneDNN and cuDNN run faster for this network than NCHW; the model is converted to match. On the CPU the
    subtraction is OpenCV's (one vectorised pass per frame into the batch buffer: about 9x less CPU time
    than torch's broadcast uint8 - float32 here, measured in docs/benchmarks.md); on other devices the uint8
    batch is uploaded (4x fewer bytes) and centred there. Both give the same float32 values exactly: every
    uint8 minus an integral mean is exactly representable.
    """
    if device.type == "cpu":
        batch = np.empty((len(frames), *frames[0].shape), dtype=np.float32)
        for frame, out in zip(frames, batch):
            cv2.subtract(frame, _BGR_MEAN_SCALAR, dst=out, dtype=cv2.CV_32F)  # type: ignore[call-overload]
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(dtype)  # NCHW view of NHWC: channels-last
    uploaded = torch.from_numpy(np.stack(frames)).to(device).permute(0, 3, 1, 2)
    mean = torch.tensor(BGR_MEAN, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    centred = torch.sub(uploaded, mean)  # uint8 - float32 -> float32 in one pass
    return centred.to(dtype).contiguous(memory_format=torch.channels_last)


class RetinaFaceDetector:
    def __init__(
        self, model: RetinaFace, device: torch.device, fp16: bool = False, thresholds: Thresholds = Thresholds()
    ) -> None:
        self.name = f"retinaface-{model.backbone_name}"
        self.device = device
        self.dtype = torch.float16 if fp16 and device.type == "cuda" else torch.float32
        self.model = model.to(device=device, dtype=self.dtype, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        self.thresholds = thresholds

    @torch.inference_mode()
    def forward(self, frames: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw network outputs for a batch (loc, conf, landmarks), in float32."""
        loc, conf, landmarks = self.model(preprocess(frames, self.device, self.dtype))
        return loc.float(), conf.float(), landmarks.float()

    @torch.inference_mode()
    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        if not frames:
            return []
        height, width = frames[0].shape[:2]
        loc, conf, landmark_offsets = self.forward(frames)
        priors = cached_priors(height, width, str(self.device))
        scale = torch.tensor([width, height], device=self.device, dtype=torch.float32)
        t = self.thresholds
        scores = conf[..., 1]
        # Only candidates that can be reported are decoded (see _select for why this changes nothing).
        wanted = (scores > t.confidence) & (scores >= t.visualization)
        results = []
        for i in range(len(frames)):
            index = torch.nonzero(wanted[i]).squeeze(1)
            boxes = decode_boxes(loc[i, index], priors[index]) * scale.repeat(2)
            points = decode_landmarks(landmark_offsets[i, index], priors[index]) * scale
            results.append(self._select(boxes, scores[i, index], points))
        return results

    def _select(self, boxes: torch.Tensor, scores: torch.Tensor, points: torch.Tensor) -> list[Face]:
        """Top-k, NMS, keep-top-k over candidates already above both thresholds, as the reference does.

        The reference runs NMS over every box above ``confidence`` (0.02: often thousands) and only then keeps
        those above ``visualization``. Dropping them first gives the same faces: greedy NMS only lets a box be
        suppressed by higher-scored ones, and top-k / keep-top-k cut from the low end, so the faces reported
        (score >= visualisation) are exactly those of the reference order of operations.
        """
        t = self.thresholds
        candidates = torch.arange(scores.numel(), device=scores.device)
        if candidates.numel() > t.top_k:
            candidates = torch.topk(scores, t.top_k).indices
        kept = candidates[nms(boxes[candidates], scores[candidates], t.nms)][: t.keep_top_k]
        box_list = boxes[kept].cpu().tolist()
        score_list = scores[kept].cpu().tolist()
        point_list = points[kept].cpu().tolist()
        return [
            Face(tuple(b), s, tuple((x, y) for x, y in p))  # type: ignore[arg-type]
            for b, s, p in zip(box_list, score_list, point_list)
        ]
