from __future__ import annotations

import torch

from jobs.face_detection.decode import decode_boxes, decode_landmarks
from jobs.face_detection.priors import compute_priors


def test_zero_regression_gives_the_prior_box() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    boxes = decode_boxes(torch.zeros(1, 1, 4), priors)
    assert torch.allclose(boxes, torch.tensor([[[0.4, 0.3, 0.6, 0.7]]]))
    points = decode_landmarks(torch.zeros(1, 1, 10), priors)
    assert torch.allclose(points, torch.full((1, 1, 5, 2), 0.5))


def test_offsets_use_variances_0_1_and_0_2() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    loc = torch.tensor([[[1.0, -1.0, 0.0, 5.0]]])  # centre moves by 0.1*w, -0.1*h; height scales by exp(1)
    (x1, y1, x2, y2), = decode_boxes(loc, priors)[0].tolist()
    assert abs((x1 + x2) / 2 - 0.52) < 1e-6 and abs((y1 + y2) / 2 - 0.46) < 1e-6
    assert abs((y2 - y1) - 0.4 * torch.e) < 1e-5 and abs((x2 - x1) - 0.2) < 1e-6
    points = decode_landmarks(torch.tensor([[[1.0, 2.0] * 5]]), priors)
    assert torch.allclose(points[0, 0, 3], torch.tensor([0.52, 0.58]))


def test_decoding_a_batch_equals_decoding_each_item() -> None:
    torch.manual_seed(1)
    priors = compute_priors(64, 96)
    loc, landmarks = torch.randn(3, len(priors), 4), torch.randn(3, len(priors), 10)
    batch_boxes, batch_points = decode_boxes(loc, priors), decode_landmarks(landmarks, priors)
    for i in range(3):
        assert torch.equal(batch_boxes[i : i + 1], decode_boxes(loc[i : i + 1], priors))
        assert torch.equal(batch_points[i : i + 1], decode_landmarks(landmarks[i : i + 1], priors))
