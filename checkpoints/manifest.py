"""The manifest: one small JSON object in the store that lists the job's checkpoints.

Status, discovery and retention read this object instead of listing big folders (slow on the Drive mount,
lagging on the Drive API). A checkpoint enters the manifest only after its upload is complete and verified
(size re-stated; sha256 read back where the backend exposes a local path), so every record points at a
complete object. Checkpoint keys are unique (a sequence number) and fan out into numbered sub-folders so no
folder holds more than the store's ``max_entries_per_folder`` entries.

Writes are atomic through the store; the previous manifest is kept under ``manifest.prev.json`` so a torn
write on a mount without atomic rename costs at most the newest record. One writer (the lease holder) updates
it; inside the process a lock serialises the sync thread and retention, and a revision number detects a
second writer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from checkpoints.store import CheckpointStore
from checkpoints.validators import file_sha256
from orchestrator.core.errors import StateError, StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

MANIFEST_KEY = "manifest.json"
MANIFEST_PREV_KEY = "manifest.prev.json"
CHECKPOINT_PREFIX = "checkpoints/"
FORMAT_VERSION = 1
KNOWN_TAGS = ("final", "best", "milestone")


@dataclass(frozen=True)
class ManifestRecord:
    """One stored checkpoint."""

    name: str  # file name the job wrote (e.g. "micro.backup"); several records may share it
    key: str  # where the object lives in the store (unique)
    counter: int | None  # progress counter (e.g. darknet iteration); discovery orders by it
    size: int
    sha256: str
    created: float  # seconds since the epoch, when it entered the manifest
    session: str = ""
    file_id: str | None = None  # backend address (Drive file ID)
    tags: tuple[str, ...] = ()
    seq: int = 0  # publication order (unique, increasing)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ManifestRecord:
        fields = dict(data)
        fields["tags"] = tuple(fields.get("tags") or ())  # type: ignore[arg-type]
        return cls(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Manifest:
    """All records plus the next sequence number. Pure value: methods return new manifests."""

    records: tuple[ManifestRecord, ...] = ()
    next_seq: int = 1
    revision: int = 0

    def add(self, record: ManifestRecord) -> Manifest:
        others = tuple(r for r in self.records if r.key != record.key)
        return replace(self, records=others + (record,), next_seq=max(self.next_seq, record.seq + 1))

    def remove(self, keys: set[str] | frozenset[str]) -> Manifest:
        return replace(self, records=tuple(r for r in self.records if r.key not in keys))

    def get(self, key: str) -> ManifestRecord | None:
        return next((r for r in self.records if r.key == key), None)

    def newest_first(self) -> list[ManifestRecord]:
        """Records ordered by counter (None last), then by publication order."""
        return sorted(self.records, key=lambda r: (r.counter is not None, r.counter or 0, r.seq), reverse=True)

    def to_bytes(self) -> bytes:
        doc = {
            "format": FORMAT_VERSION,
            "revision": self.revision,
            "next_seq": self.next_seq,
            "records": [r.to_json() for r in sorted(self.records, key=lambda r: r.seq)],
        }
        return (json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        doc = json.loads(data.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT_VERSION:
            raise ValueError(f"not a format-{FORMAT_VERSION} manifest")
        records = tuple(ManifestRecord.from_json(r) for r in doc["records"])
        return cls(records=records, next_seq=int(doc["next_seq"]), revision=int(doc["revision"]))


def checkpoint_key(name: str, seq: int, max_entries_per_folder: int) -> str:
    """Unique key of the ``seq``-th published checkpoint, fanned out so no folder exceeds the limit.

    ``checkpoints/00000/00000001-micro.backup``: bucket = seq // per_folder. One slot per folder is kept free
    for a temp file during a copy.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"checkpoint name must be a plain file name, got {name!r}")
    per_folder = max(1, max_entries_per_folder - 1)
    return f"{CHECKPOINT_PREFIX}{seq // per_folder:05d}/{seq:08d}-{name}"


class ManifestStore:
    """Reads and updates the manifest of one store; publishes checkpoints into it."""

    def __init__(
        self,
        store: CheckpointStore,
        session: str = "",
        clock: Callable[[], float] = time.time,
        verify_readback: bool = True,
    ) -> None:
        self.store = store
        self.session = session
        self.clock = clock
        self.verify_readback = verify_readback
        self._lock = threading.RLock()
        self._known_revision: int | None = None

    # -- reading -------------------------------------------------------------------------------------------

    def load(self) -> Manifest:
        """The current manifest; empty if none; the previous one if the current is unreadable."""
        for key in (MANIFEST_KEY, MANIFEST_PREV_KEY):
            if self.store.stat(key) is None:
                continue
            try:
                return Manifest.from_bytes(self.store.read_bytes(key))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("manifest %r in %s is unreadable (%s); trying the previous copy", key, self.store, exc)
        return Manifest()

    # -- writing -------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Manifest], Manifest]) -> Manifest:
        """Apply ``change`` to the current manifest and write the result atomically; returns it."""
        with self._lock:
            current = self.load()
            if self._known_revision is not None and current.revision != self._known_revision:
                raise StateError(
                    f"the manifest in {self.store} is at revision {current.revision}, but this session last wrote "
                    f"{self._known_revision}: another session is writing this job's checkpoints (check the lease)"
                )
            new = replace(change(current), revision=current.revision + 1)
            if current.revision:
                self.store.write_bytes(MANIFEST_PREV_KEY, current.to_bytes())
            self.store.write_bytes(MANIFEST_KEY, new.to_bytes())
            self._known_revision = new.revision
            return new

    def publish(
        self,
        src: Path,
        name: str,
        counter: int | None,
        tags: tuple[str, ...] = (),
        sha256: str | None = None,
    ) -> ManifestRecord:
        """Upload ``src``, verify the stored object, then record it. Returns the new record.

        ``sha256`` may be passed when the caller already hashed ``src`` (the sync's staged snapshot). On a
        failed verification the object is deleted and StorageError raised; the manifest is untouched.
        """
        unknown = set(tags) - set(KNOWN_TAGS)
        if unknown:
            raise ValueError(f"unknown checkpoint tags {sorted(unknown)}; known: {list(KNOWN_TAGS)}")
        size = os.stat(src).st_size
        digest = sha256 or file_sha256(src)
        with self._lock:
            seq = self.load().next_seq
            key = checkpoint_key(name, seq, self.store.max_entries_per_folder)
            # reserve the sequence number first, so a crash after upload never reuses the key
            self.update(lambda m: replace(m, next_seq=max(m.next_seq, seq + 1)))
        entry = self.store.upload(src, key)
        self._verify(key, size, digest)
        record = ManifestRecord(
            name=name,
            key=key,
            counter=counter,
            size=size,
            sha256=digest,
            created=self.clock(),
            session=self.session,
            file_id=entry.file_id,
            tags=tuple(tags),
            seq=seq,
        )
        self.update(lambda m: m.add(record))
        log.info("checkpoint %s (counter %s, %d bytes) stored as %s", name, counter, size, key)
        return record

    def _verify(self, key: str, size: int, digest: str) -> None:
        entry = self.store.stat(key)
        problem = None
        if entry is None:
            problem = "it is missing after the upload"
        elif entry.size != size:
            problem = f"it has {entry.size} bytes, expected {size}"
        elif self.verify_readback:
            local = self.store.local_path(key)
            if local is not None and file_sha256(local) != digest:
                problem = "its sha256 differs from the source"
        if problem:
            self.store.delete(key)
            raise StorageError(f"stored checkpoint {key!r} failed verification ({problem}); it was deleted, retry")

    def forget(self, keys: set[str]) -> Manifest:
        """Remove records (the objects are deleted by the caller, after this)."""
        return self.update(lambda m: m.remove(keys))

    def tag(self, key: str, *tags: str) -> Manifest:
        def change(m: Manifest) -> Manifest:
            record = m.get(key)
            if record is None:
                raise StorageError(f"cannot tag {key!r}: it is not in the manifest")
            return m.add(replace(record, tags=tuple(sorted(set(record.tags) | set(tags)))))

        return self.update(change)


__all__ = [
    "CHECKPOINT_PREFIX",
    "MANIFEST_KEY",
    "Manifest",
    "ManifestRecord",
    "ManifestStore",
    "checkpoint_key",
]
