from __future__ import annotations

import math
from itertools import product

import pytest
import torch

from jobs.face_detection.priors import cached_priors, compute_priors, prior_count


def reference_priors(height: int, width: int) -> list[list[float]]:
    """The prior-box definition written as plain loops (cells row-major, both anchors of a cell together)."""
    out = []
    for step, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512))):
        for i, j in product(range(math.ceil(height / step)), range(math.ceil(width / step))):
            for size in sizes:
                out.append([(j + 0.5) * step / width, (i + 0.5) * step / height, size / width, size / height])
    return out


def test_16800_priors_at_640x640() -> None:
    assert compute_priors(640, 640).shape == (16_800, 4)
    assert prior_count(640, 640) == 16_800


@pytest.mark.parametrize("height,width", [(240, 320), (101, 157), (480, 640)])
def test_priors_match_the_definition(height: int, width: int) -> None:
    expected = torch.tensor(reference_priors(height, width), dtype=torch.float32)
    actual = compute_priors(height, width)
    assert actual.shape == expected.shape == (prior_count(height, width), 4)
    assert torch.allclose(actual, expected, atol=1e-7)


def test_priors_are_built_once_per_size() -> None:
    cached_priors.cache_clear()
    first = cached_priors(240, 320)
    assert cached_priors(240, 320) is first
    assert cached_priors(480, 640) is not first
    assert cached_priors.cache_info().misses == 2
