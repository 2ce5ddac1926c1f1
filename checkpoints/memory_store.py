"""An in-memory store: the test double for everything built on :class:`CheckpointStore`.

It keeps the contract (atomic publish, exact keys, permanent delete) and can simulate failures through
``fail_next``, so the manifest, discovery, sync and retention layers are tested without a disk or a network.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from checkpoints.store import CheckpointStore, StoreEntry, check_key, check_prefix
from orchestrator.core.atomic import atomic_write_bytes
from orchestrator.core.errors import StorageError


class MemoryStore(CheckpointStore):
    """Objects in a dict. ``clock`` supplies modification times (a fake clock in tests)."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time, max_entries_per_folder: int = 1000) -> None:
        self._objects: dict[str, tuple[bytes, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.max_entries_per_folder = max_entries_per_folder
        #: operation name ("upload", "write_bytes", "download", "read_bytes", "delete") -> error to raise once
        self.fail_next: dict[str, BaseException] = {}
        self.calls: list[tuple[str, str]] = []

    def _maybe_fail(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        error = self.fail_next.pop(op, None)
        if error is not None:
            raise error

    def _entry(self, key: str, data: bytes, modified: float) -> StoreEntry:
        return StoreEntry(key=key, size=len(data), modified=modified)

    def list(self, prefix: str = "") -> list[StoreEntry]:
        check_prefix(prefix)
        with self._lock:
            items = sorted(self._objects.items())
        return [self._entry(k, d, m) for k, (d, m) in items if k.startswith(prefix)]

    def stat(self, key: str) -> StoreEntry | None:
        check_key(key)
        with self._lock:
            item = self._objects.get(key)
        return None if item is None else self._entry(key, *item)

    def _get(self, key: str) -> tuple[bytes, float]:
        check_key(key)
        with self._lock:
            item = self._objects.get(key)
        if item is None:
            raise StorageError(f"{key!r} is not in the memory store")
        return item

    def download(self, key: str, dest: Path) -> StoreEntry:
        self._maybe_fail("download", key)
        data, modified = self._get(key)
        atomic_write_bytes(Path(dest), data)
        return self._entry(key, data, modified)

    def upload(self, src: Path, key: str) -> StoreEntry:
        check_key(key)
        self._maybe_fail("upload", key)
        try:
            data = Path(src).read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot upload {src} as {key!r}: {exc}") from exc
        return self._put(key, data)

    def read_bytes(self, key: str) -> bytes:
        self._maybe_fail("read_bytes", key)
        return self._get(key)[0]

    def write_bytes(self, key: str, data: bytes) -> StoreEntry:
        check_key(key)
        self._maybe_fail("write_bytes", key)
        return self._put(key, bytes(data))

    def _put(self, key: str, data: bytes) -> StoreEntry:
        modified = self._clock()
        with self._lock:
            self._objects[key] = (data, modified)
        return self._entry(key, data, modified)

    def delete(self, key: str) -> None:
        check_key(key)
        self._maybe_fail("delete", key)
        with self._lock:
            self._objects.pop(key, None)
