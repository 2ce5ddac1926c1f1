"""The detections data contract: one face, one frame, and their JSON form.

``<name>.detections.jsonl`` holds one JSON object per processed frame, in frame order::

    {"frame": 0, "time_s": 0.0, "faces": [{"box": [x1, y1, x2, y2], "score": 0.99,
                                            "landmarks": [[x, y], [x, y], [x, y], [x, y], [x, y]]}]}

Boxes and landmarks are in pixels of the original frame (before any resize for inference), rounded to 0.01;
scores are rounded to 1e-4. Landmarks (right eye, left eye, nose, right and left mouth corner, as the reference
orders them) are present for RetinaFace models only. Documented in docs/face_detection.md: keep it stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Point = tuple[float, float]


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[Point, ...] | None = None

    def scaled(self, sx: float, sy: float) -> Face:
        """This face with x multiplied by ``sx`` and y by ``sy`` (inference pixels -> original pixels)."""
        x1, y1, x2, y2 = self.box
        landmarks = None if self.landmarks is None else tuple((x * sx, y * sy) for x, y in self.landmarks)
        return Face((x1 * sx, y1 * sy, x2 * sx, y2 * sy), self.score, landmarks)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4)}
        if self.landmarks is not None:
            out["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks]
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Face:
        landmarks = obj.get("landmarks")
        return cls(
            box=tuple(float(v) for v in obj["box"]),  # type: ignore[arg-type]
            score=float(obj["score"]),
            landmarks=None if landmarks is None else tuple((float(x), float(y)) for x, y in landmarks),
        )


@dataclass(frozen=True)
class FrameDetections:
    frame: int
    time_s: float
    faces: tuple[Face, ...]

    def to_json_line(self) -> str:
        obj = {"frame": self.frame, "time_s": round(self.time_s, 4), "faces": [f.to_json() for f in self.faces]}
        return json.dumps(obj, separators=(", ", ": ")) + "\n"

    @classmethod
    def from_json_line(cls, line: str) -> FrameDetections:
        obj = json.loads(line)
        return cls(int(obj["frame"]), float(obj["time_s"]), tuple(Face.from_json(f) for f in obj["faces"]))


def read_detections(text: str) -> list[FrameDetections]:
    return [FrameDetections.from_json_line(line) for line in text.splitlines() if line.strip()]
