"""Drawing detections on frames: boxes, scores and (optionally) the five landmarks, in place."""

from __future__ import annotations

import cv2
import numpy as np

from jobs.face_detection.detections import Face

BOX_COLOR = (0, 0, 255)
TEXT_COLOR = (255, 255, 255)
#: right eye, left eye, nose, right mouth corner, left mouth corner (BGR)
LANDMARK_COLORS = ((0, 0, 255), (0, 255, 255), (255, 0, 255), (0, 255, 0), (255, 0, 0))


def draw_faces(frame: np.ndarray, faces: list[Face] | tuple[Face, ...], landmarks: bool = True) -> np.ndarray:
    """Draw ``faces`` (original-frame pixels) on ``frame``; returns the same array."""
    thickness = max(1, round(min(frame.shape[:2]) / 300))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face.box)
        cv2.rectangle(frame, (x1, y1), (x2, y2), BOX_COLOR, thickness)
        label = f"{face.score:.2f}"
        (_, text_h), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_DUPLEX, 0.4 * thickness, 1)
        baseline_y = y1 - 4 if y1 - 4 - text_h >= 0 else y1 + text_h + 4  # inside the box at the top edge
        cv2.putText(frame, label, (x1 + 2, baseline_y), cv2.FONT_HERSHEY_DUPLEX, 0.4 * thickness, TEXT_COLOR, 1,
                    cv2.LINE_AA)
        if landmarks and face.landmarks is not None:
            for (x, y), color in zip(face.landmarks, LANDMARK_COLORS):
                cv2.circle(frame, (round(x), round(y)), thickness + 1, color, -1)
    return frame


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a frame as JPEG")
    return data.tobytes()
