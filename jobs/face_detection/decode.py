"""Decoding RetinaFace regressions against prior boxes, vectorised over the batch (variances 0.1, 0.2)."""

from __future__ import annotations

from typing import Final

import torch

VARIANCES: Final = (0.1, 0.2)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float] = VARIANCES) -> torch.Tensor:
    """``loc`` [N, P, 4] and ``priors`` [P, 4] (cx, cy, w, h) -> boxes [N, P, 4] (x1, y1, x2, y2), relative."""
    centers = priors[:, :2] + loc[..., :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[..., 2:] * variances[1])
    top_left = centers - sizes / 2
    return torch.cat([top_left, top_left + sizes], dim=-1)


def decode_landmarks(
    landmarks: torch.Tensor, priors: torch.Tensor, variances: tuple[float, float] = VARIANCES
) -> torch.Tensor:
    """``landmarks`` [N, P, 10] -> five (x, y) points [N, P, 5, 2], relative to the input size."""
    offsets = landmarks.reshape(*landmarks.shape[:-1], 5, 2)
    return priors[:, None, :2] + offsets * variances[0] * priors[:, None, 2:]
