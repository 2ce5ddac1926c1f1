"""OpenCV Haar cascade face detector: the CPU fallback that needs no weights file.

Uses ``haarcascade_frontalface_default.xml`` shipped in ``cv2.data`` (OpenCV 4.x; OpenCV 5 dropped the
cascades, hence ``opencv-python<5`` in the ``face`` extra). A cascade gives no calibrated confidence: every
face gets score 1.0, and no landmarks.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from jobs.face_detection.detections import Face
from orchestrator.core.errors import ConfigError

CASCADE = "haarcascade_frontalface_default.xml"


def cascade_path() -> Path:
    data = getattr(cv2, "data", None)
    folder = Path(getattr(data, "haarcascades", "")) if data is not None else None
    if folder is None or not (folder / CASCADE).is_file():
        raise ConfigError(
            f"model: haar needs OpenCV's {CASCADE}, missing from this OpenCV {cv2.__version__} "
            "(OpenCV 5 removed the cascades): pip install 'opencv-python<5'"
        )
    return folder / CASCADE


class HaarDetector:
    name = "haar"

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24) -> None:
        self.classifier = cv2.CascadeClassifier(str(cascade_path()))
        if self.classifier.empty():
            raise ConfigError(f"OpenCV could not load {cascade_path()}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size

    def detect(self, frames: list[np.ndarray]) -> list[list[Face]]:
        results = []
        for frame in frames:
            gray = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
            rects = self.classifier.detectMultiScale(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                minSize=(self.min_size, self.min_size),
            )
            faces = [Face((float(x), float(y), float(x + w), float(y + h)), 1.0) for x, y, w, h in np.asarray(rects)]
            results.append(sorted(faces, key=lambda f: (f.box[1], f.box[0])))
        return results
