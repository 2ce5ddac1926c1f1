"""RetinaFace prior (anchor) boxes: a pure function of the input size, computed once per (H, W) and cached.

Three levels with steps 8, 16, 32 and two square anchors per cell (16/32, 64/128, 256/512 pixels); cells are
ceil(H/step) x ceil(W/step), row-major, both anchors of a cell adjacent. Boxes are (cx, cy, w, h) relative to
the input size, not clipped. 16,800 priors at 640x640.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Final

import torch

MIN_SIZES: Final = ((16, 32), (64, 128), (256, 512))
STEPS: Final = (8, 16, 32)


def prior_count(height: int, width: int) -> int:
    return sum(math.ceil(height / s) * math.ceil(width / s) * len(m) for s, m in zip(STEPS, MIN_SIZES))


def compute_priors(height: int, width: int) -> torch.Tensor:
    """Prior boxes [P, 4] (cx, cy, w, h), float32, relative to an input of ``height`` x ``width`` pixels."""
    levels = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width
        grid_y, grid_x = torch.meshgrid(cy, cx, indexing="ij")
        centers = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)
        wh = torch.tensor([[s / width, s / height] for s in sizes], dtype=torch.float64)
        wh = wh.unsqueeze(0).expand(centers.shape[0], -1, -1)
        levels.append(torch.cat([centers, wh], dim=-1).reshape(-1, 4))
    return torch.cat(levels).to(torch.float32)


@lru_cache(maxsize=32)
def cached_priors(height: int, width: int, device: str = "cpu") -> torch.Tensor:
    """:func:`compute_priors`, built once per (height, width, device)."""
    return compute_priors(height, width).to(device)
