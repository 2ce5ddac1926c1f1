"""The abstract checkpoint store: a few primitives every backend implements.

Keys are relative POSIX paths (``"checkpoints/0003/micro_300.weights"``). A backend implements only the
primitives below; manifest, discovery, integrity, retention and sync are written once on top of them and
never touch a backend's internals. Every backend passes the contract suite in ``tests/checkpoints/``.

Atomic publish is the rule: after ``upload``/``write_bytes`` returns, readers see the complete object; before,
they see the old one or nothing. A backend that cannot rename atomically (Drive) makes the object visible only
through the manifest, which is itself written last.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import StorageError


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid store key, else raise StorageError.

    A key is a relative POSIX path of non-empty parts: no leading ``/``, no ``.``/``..`` parts, no empty
    parts (``a//b``), no trailing ``/``, no NUL or backslash. Every backend calls this on every key it is given.
    """
    if not isinstance(key, str) or not key:
        raise StorageError(f"invalid store key {key!r}: keys are non-empty relative POSIX paths")
    if "\\" in key or "\0" in key:
        raise StorageError(f"invalid store key {key!r}: backslashes and NUL are not allowed")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StorageError(
            f"invalid store key {key!r}: no leading/trailing '/', no empty, '.' or '..' parts (e.g. 'ckpt/a.weights')"
        )
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a valid listing prefix: ``""`` or a key, optionally ending in ``/``."""
    if prefix == "":
        return prefix
    check_key(prefix.removesuffix("/"))
    return prefix


@dataclass(frozen=True)
class StoreEntry:
    """One object in a store."""

    key: str
    size: int
    modified: float  # seconds since the epoch
    file_id: str | None = None  # backend-specific address (Drive file ID); None for the path store


class CheckpointStore(ABC):
    """Where a job's durable objects live (a folder on the Drive mount, or Drive through its API)."""

    #: Short name used in logs and in ``orchestrator checkpoints`` output.
    name: str = "store"
    #: Upper layers fan keys out so no folder holds more entries than this (the Drive mount fails on big folders).
    max_entries_per_folder: int = 1000
    #: True when ``write_bytes`` over an existing key keeps the object's address and readers see the old or the
    #: new content whole (Drive: one file, a new revision): the manifest then keeps no previous copy, and its
    #: writer re-reads it only now and then to detect a second writer (reads cost round trips).
    replaces_in_place: bool = False
    #: True when ``upload`` itself checks the stored object's size and checksum against the source (Drive: the
    #: create request answers with both), so publishing needs no extra ``stat`` round trip to verify it.
    verifies_uploads: bool = False

    def local_path(self, key: str) -> Path | None:
        """The object's path on this machine if the backend is a folder (cheap read-back), else None."""
        return None

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoreEntry]:
        """Entries whose key starts with ``prefix`` (recursive). Cost grows with the result: keep prefixes narrow."""

    @abstractmethod
    def stat(self, key: str) -> StoreEntry | None:
        """The entry for ``key``, or None if absent."""

    @abstractmethod
    def download(self, key: str, dest: Path) -> StoreEntry:
        """Copy ``key`` to local ``dest`` atomically (temp + rename); raise StorageError if absent."""

    @abstractmethod
    def upload(self, src: Path, key: str) -> StoreEntry:
        """Publish local ``src`` under ``key`` atomically, replacing any previous object of that key."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Whole content of a small object (manifests, state); raise StorageError if absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> StoreEntry:
        """Publish a small object atomically."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` permanently (no quota-eating trash copy where the backend allows); absent is fine."""

    def upload_with_labels(self, src: Path, key: str, labels: dict[str, str]) -> StoreEntry:
        """``upload`` plus short descriptive labels (sequence, counter, hash) a backend may attach to the object
        for people browsing it (Drive: ``appProperties``); folders ignore them."""
        return self.upload(src, key)

    def remember(self, key: str, file_id: str) -> None:
        """An address for ``key`` learned elsewhere (a manifest record's file ID); backends that look keys up
        through a lagging index use it first. Folders ignore it."""

    def check_usable(self) -> None:
        """Raise StorageError with a clear message if the store cannot be used (wrong folder, no access)."""

    def sweep_leftovers(self, older_than: float = 24 * 3600.0) -> int:
        """Remove partial objects left by writers killed mid-copy, older than ``older_than`` seconds; call only
        while holding the job's lease. Returns how many were removed."""
        return 0
