"""The real pretrained MobileNet-0.25 RetinaFace on real photos."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from jobs.face_detection.detector import Thresholds
from jobs.face_detection.haar import HaarDetector


def iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_finds_the_astronauts_face(detector, face_photo) -> None:
    (faces,) = detector.detect([face_photo])
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.99
    # independent check of the location: OpenCV's Haar cascade finds the same face
    (haar_faces,) = HaarDetector().detect([face_photo])
    assert len(haar_faces) == 1 and iou(face.box, haar_faces[0].box) > 0.6
    right_eye, left_eye, nose, mouth_right, mouth_left = face.landmarks
    x1, y1, x2, y2 = face.box
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in face.landmarks)
    assert right_eye[0] < left_eye[0] and mouth_right[0] < mouth_left[0]  # image left = subject's right
    assert max(right_eye[1], left_eye[1]) < nose[1] < min(mouth_right[1], mouth_left[1])


def test_no_face_on_the_cat(detector, cat_photo) -> None:
    assert detector.detect([cat_photo]) == [[]]


def test_bgr_order_matters_measurably(detector, cat_photo, face_photo) -> None:
    """If channels were swapped to RGB anywhere, the cat would be reported as a face (score ~0.75 > 0.6)."""
    low = dataclasses.replace(detector.thresholds, visualization=0.0)
    original = detector.thresholds
    try:
        detector.thresholds = low
        bgr_cat = max((f.score for f in detector.detect([cat_photo])[0]), default=0.0)
        rgb_cat = max((f.score for f in detector.detect([np.ascontiguousarray(cat_photo[..., ::-1])])[0]), default=0.0)
        bgr_face = detector.detect([face_photo])[0][0].score
        rgb_face = detector.detect([np.ascontiguousarray(face_photo[..., ::-1])])[0][0].score
    finally:
        detector.thresholds = original
    assert bgr_cat < 0.3 and rgb_cat > 0.6
    assert bgr_face > rgb_face  # the trained channel order gives the more confident face


def test_a_batch_gives_the_same_faces_as_single_frames(detector, face_photo, cat_photo) -> None:
    cat = cv2.resize(cat_photo, face_photo.shape[1::-1])
    batch = detector.detect([face_photo, cat, face_photo])
    single = [detector.detect([f])[0] for f in (face_photo, cat, face_photo)]
    assert [len(f) for f in batch] == [1, 0, 1]
    for got, want in zip(batch, single):
        for a, b in zip(got, want):
            assert np.allclose(a.box, b.box, atol=1e-2) and abs(a.score - b.score) < 1e-4


def test_thresholds_default_to_the_reference() -> None:
    assert Thresholds() == Thresholds(confidence=0.02, top_k=5000, nms=0.4, keep_top_k=750, visualization=0.6)


def test_haar_fallback_finds_the_face_not_the_cat(face_photo, cat_photo) -> None:
    faces, cat = HaarDetector().detect([face_photo, cat_photo])
    assert len(faces) == 1 and faces[0].landmarks is None
    x1, y1, x2, y2 = faces[0].box
    assert 90 < (x1 + x2) / 2 < 190 and 40 < (y1 + y2) / 2 < 110
    assert cat == []


def test_early_visualisation_filter_equals_the_reference_order(detector, face_photo, cat_photo) -> None:
    """Dropping low scores before NMS must report exactly what NMS over every box > 0.02 then >= 0.6 reports."""
    group = np.full((320, 640, 3), 90, np.uint8)
    group[:, :320] = face_photo
    group[60:260, 360:560] = cv2.resize(face_photo, (200, 200))
    cat = cv2.resize(cat_photo, (640, 320))
    frames = [group, cat, np.ascontiguousarray(group[..., ::-1])]
    fast = detector.detect(frames)
    original = detector.thresholds
    try:
        detector.thresholds = dataclasses.replace(original, visualization=0.0)
        full = detector.detect(frames)
    finally:
        detector.thresholds = original
    assert sum(len(f) for f in full) > sum(len(f) for f in fast) + 5  # low-score boxes went through NMS there
    assert [[f for f in faces if f.score >= 0.6] for faces in full] == fast
    assert len(fast[0]) == 2
