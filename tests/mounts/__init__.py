"""A Drive mount double as a real FUSE file system: slow opens and listings, EIO on huge folders, lazy uploads.

``mount(backing, cache, **behaviour)`` is the entry point; ``harness`` documents the model. Benchmarks under bench/
import it too.
"""

from __future__ import annotations

from tests.mounts.behaviour import MountBehaviour
from tests.mounts.harness import DriveMount, MountError, fuse_unavailable, mount

__all__ = ["DriveMount", "MountBehaviour", "MountError", "fuse_unavailable", "mount"]
