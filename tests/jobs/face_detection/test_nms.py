from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.face_detection.nms import nms


def loop_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS as the reference's py_cpu_nms defines it (pixel areas with +1)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        rest = []
        for j in order:
            w = max(0.0, min(x2[i], x2[j]) - max(x1[i], x1[j]) + 1)
            h = max(0.0, min(y2[i], y2[j]) - max(y1[i], y1[j]) + 1)
            inter = w * h
            if inter / (areas[i] + areas[j] - inter) <= threshold:
                rest.append(j)
        order = rest
    return keep


def test_overlapping_boxes_keep_the_best_one() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.8, 0.9, 0.7])
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(boxes, scores, 0.9).tolist() == [1, 0, 2]
    assert nms(boxes[:0], scores[:0], 0.4).tolist() == []


def test_half_precision_inputs_are_suppressed_in_float32() -> None:
    boxes = torch.tensor([[0, 0, 1000, 1000], [0, 0, 1000, 1003]], dtype=torch.float16)
    assert nms(boxes, torch.tensor([0.9, 0.8], dtype=torch.float16), 0.4).tolist() == [0]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.floats(0.1, 0.9))
def test_matches_the_reference_loop(seed: int, count: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (count, 2))
    wh = rng.uniform(1, 40, (count, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.permutation(count).astype(np.float32) / count  # distinct scores: a unique order
    expected = loop_nms(boxes, scores, threshold)
    assert nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).tolist() == expected
