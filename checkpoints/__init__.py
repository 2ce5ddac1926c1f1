"""Checkpoint stores (path / Drive API), manifest, integrity, discovery, sync and retention."""

from __future__ import annotations

from checkpoints.store import CheckpointStore, StoreEntry

__all__ = ["CheckpointStore", "StoreEntry"]
