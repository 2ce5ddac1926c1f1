"""``requires_fuse``: skip a test that mounts the Drive double, only where the machine has no /dev/fuse."""

from __future__ import annotations

import pytest

from tests.mounts.harness import fuse_unavailable

requires_fuse = pytest.mark.skipif(fuse_unavailable() is not None, reason=fuse_unavailable() or "")
