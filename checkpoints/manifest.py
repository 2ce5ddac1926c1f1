"""The manifest: one small JSON object in the store that lists the job's checkpoints.

Status, discovery and retention read this object instead of listing big folders (slow on the Drive mount,
lagging on the Drive API). A checkpoint enters the manifest only after its upload is complete and verified
(size re-stated; sha256 read back where the backend exposes a local path), so every record points at a
complete object. Checkpoint keys are unique (a sequence number) and fan out into numbered sub-folders so no
folder holds more than the store's ``max_entries_per_folder`` entries.

Writes are atomic through the store. On a folder store the previous manifest is kept under
``manifest.prev.json`` so a torn write on a mount without atomic rename costs at most the newest record; a store
that replaces in place (Drive: one file at a stable ID, updated by revision) needs no copy. One writer (the lease
holder) updates it; inside the process a lock serialises the sync thread and retention, and a revision number
detects a second writer. Sequence numbers are reserved before uploads and never reused; the job home's
:class:`~checkpoints.manifest_pin.ManifestPin` makes a lagging store wait rather than look empty.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from checkpoints.manifest_pin import ManifestPin
from checkpoints.store import CheckpointStore, StoreEntry
from checkpoints.validators import file_sha256
from orchestrator.core.errors import StateError, StorageError, StoreVanishedError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

MANIFEST_KEY = "manifest.json"
MANIFEST_PREV_KEY = "manifest.prev.json"
CHECKPOINT_PREFIX = "checkpoints/"
FORMAT_VERSION = 1
KNOWN_TAGS = ("final", "best", "milestone")
SEQ_BLOCK = 16  # sequence numbers reserved per manifest write


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

    def latest_by_name(self) -> dict[str, ManifestRecord]:
        """Each name's newest record (the highest ``seq``): a newer record of a name supersedes an older one."""
        latest: dict[str, ManifestRecord] = {}
        for record in sorted(self.records, key=lambda r: r.seq):
            latest[record.name] = record
        return latest

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


def store_holds(store: CheckpointStore, record: ManifestRecord, listed: dict[str, int] | None = None) -> bool:
    """Whether ``store`` holds ``record``'s object with its size. On a lazy mount a manifest may reach Drive
    while an object it names never does, so what a record says is checked against the store itself.

    ``listed`` (key -> size from one ``store.list``) is looked up first; a key it lacks or with another size is
    ``stat``-ed (a Drive API listing shows new files only after a delay; ``stat`` does not). A fault while
    checking is raised (StorageError, OSError): each caller decides what an unknown answer means.
    """
    if listed is not None and listed.get(record.key) == record.size:
        return True
    entry = store.stat(record.key)
    return entry is not None and entry.size == record.size


@dataclass(frozen=True)
class Backoff:
    """Bounded exponential waits for a store that is catching up (a lagging listing, a ghost of a delete)."""

    attempts: int = 8
    initial: float = 1.0
    maximum: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def waits(self) -> Iterator[float]:
        wait = self.initial
        for _ in range(self.attempts):
            yield wait
            wait = min(self.maximum, wait * 2)

    @property
    def total(self) -> float:
        return sum(self.waits())


class ManifestStore:
    """Reads and updates the manifest of one store; publishes checkpoints into it.

    One writer per store (the lease holder). Writes are coalesced: sequence numbers are reserved
    ``SEQ_BLOCK`` at a time, a publish records the new checkpoint and retires what retention drops in one
    manifest write, and on a store that replaces in place (Drive) the writer keeps the manifest it wrote and
    checks only every ``recheck_every`` seconds (one metadata request) that nobody else wrote it since; a
    second writer makes it re-read the manifest and stop with StateError.
    """

    def __init__(
        self,
        store: CheckpointStore,
        session: str = "",
        clock: Callable[[], float] = time.time,
        verify_readback: bool = True,
        pin: ManifestPin | None = None,
        backoff: Backoff | None = None,
        retire: Callable[[Manifest], Iterable[ManifestRecord]] | None = None,
        recheck_every: float | None = None,
    ) -> None:
        self.store = store
        self.session = session
        self.clock = clock
        self.verify_readback = verify_readback
        self.pin = pin
        self.backoff = backoff or Backoff()
        #: retention as a function: the records to drop from a manifest that just gained a checkpoint
        self.retire = retire
        self.recheck_every = (300.0 if store.replaces_in_place else 0.0) if recheck_every is None else recheck_every
        self._lock = threading.RLock()
        self._known_revision: int | None = None
        #: called before every write (the lease check): raises to forbid it
        self.guard: Callable[[], None] | None = None
        self._last_published: str | None = None  # our newest object: gone means the store folder vanished
        self._cache: Manifest | None = None
        self._written: StoreEntry | None = None  # what the store answered to this session's last manifest write
        self._read_at = -math.inf  # time.monotonic() of the last full read (or own write)
        self._next_seq = 0  # next sequence number this session hands out ...
        self._reserved = 0  # ... below this bound, already reserved in the stored manifest

    # -- reading -------------------------------------------------------------------------------------------

    def load(self) -> Manifest:
        """The current manifest; empty only for a store that never had one.

        A job home that recorded a manifest (``pin``) never gets an empty or older one: the read is retried
        with backoff while the store catches up, then StorageError is raised (never a fresh start).
        """
        with self._lock:
            if self._cache is not None and time.monotonic() - self._read_at < self.recheck_every:
                return self._cache
            manifest = self._read_pinned()
            self._cache, self._read_at = manifest, time.monotonic()
            for record in manifest.records:
                if record.file_id:
                    self.store.remember(record.key, record.file_id)
            return manifest

    def _read_pinned(self) -> Manifest:
        pinned = self.pin.read() if self.pin is not None else None
        if pinned is not None:
            self.store.remember(MANIFEST_KEY, pinned.file_id)
        waits = self.backoff.waits()
        while True:
            manifest = self._read()
            if pinned is None or (manifest is not None and manifest.revision >= pinned.revision):
                return manifest or Manifest()
            seen = "no manifest" if manifest is None else f"revision {manifest.revision}"
            wait = next(waits, None)
            if wait is None:
                assert self.pin is not None
                raise StorageError(
                    f"{self.store} shows {seen}, but this job's home recorded manifest revision {pinned.revision} "
                    f"(file ID {pinned.file_id}) in {self.pin.path}; the store has not caught up after "
                    f"{self.backoff.total:.1f}s of waiting. Nothing was changed: run again in a few minutes. If the "
                    f"store was emptied on purpose, delete {self.pin.path} to start the job over."
                )
            log.warning(
                "%s shows %s but revision %d was recorded; waiting %.1fs for the store to catch up",
                self.store,
                seen,
                pinned.revision,
                wait,
            )
            self.backoff.sleep(wait)

    def _read(self) -> Manifest | None:
        """The stored manifest (the previous copy if the current one is unreadable), or None if there is none."""
        for key in (MANIFEST_KEY, MANIFEST_PREV_KEY):
            if self.store.stat(key) is None:
                continue
            try:
                return Manifest.from_bytes(self.store.read_bytes(key))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("manifest %r in %s is unreadable (%s); trying the previous copy", key, self.store, exc)
        return None

    # -- writing -------------------------------------------------------------------------------------------

    def update(self, change: Callable[[Manifest], Manifest]) -> Manifest:
        """Apply ``change`` to the current manifest and write the result atomically; returns it."""
        with self._lock:
            if self.guard is not None:
                self.guard()
            fresh = self._cache is None or time.monotonic() - self._read_at >= self.recheck_every
            if fresh and self._unchanged_since_written():
                fresh, self._read_at = False, time.monotonic()
            current = self._cache if not fresh and self._cache is not None else self.load()
            gone = fresh and self._last_published is not None and self.store.stat(self._last_published) is None
            if self._known_revision and (current.revision == 0 or gone):
                self._cache = None
                raise StoreVanishedError(
                    f"the checkpoint store {self.store} lost its manifest or checkpoints mid-run (this session last "
                    f"wrote revision {self._known_revision}): its folder was deleted or unmounted. Restore or "
                    f"remount it, then run the same command again"
                )
            if fresh and self._known_revision is not None and current.revision != self._known_revision:
                self._cache = None
                raise StateError(
                    f"the manifest in {self.store} is at revision {current.revision}, but this session last wrote "
                    f"{self._known_revision}: another session is writing this job's checkpoints (check the lease)"
                )
            new = replace(change(current), revision=current.revision + 1)
            if current.revision and not self.store.replaces_in_place:
                self.store.write_bytes(MANIFEST_PREV_KEY, current.to_bytes())
            entry = self.store.write_bytes(MANIFEST_KEY, new.to_bytes())
            self._written = entry
            self._known_revision = new.revision
            self._cache = new
            if self.recheck_every > 0 and fresh:
                self._read_at = time.monotonic()
            if self.pin is not None and entry.file_id:
                self.pin.write(entry.file_id, new.revision)
            return new

    def _unchanged_since_written(self) -> bool:
        """On a store that replaces in place: whether the stored manifest is still the one this session wrote
        (one metadata request instead of a full read; a second writer changes its modification time)."""
        if not self.store.replaces_in_place or self._written is None or self._cache is None:
            return False
        entry = self.store.stat(MANIFEST_KEY)
        written = self._written
        return entry is not None and (entry.file_id, entry.size, entry.modified) == (
            written.file_id,
            written.size,
            written.modified,
        )

    def reserve_seq(self) -> int:
        """A sequence number no publish of this store ever used or will use (reserved before the upload, so
        a crash after the upload never reuses the key); reserved ``SEQ_BLOCK`` at a time."""
        with self._lock:
            if self._next_seq >= self._reserved:
                block = self.update(lambda m: replace(m, next_seq=max(m.next_seq, self._next_seq) + SEQ_BLOCK))
                self._next_seq, self._reserved = block.next_seq - SEQ_BLOCK, block.next_seq
            seq = self._next_seq
            self._next_seq += 1
            return seq

    def publish(
        self,
        src: Path,
        name: str,
        counter: int | None,
        tags: tuple[str, ...] = (),
        sha256: str | None = None,
        retain: bool = True,
    ) -> ManifestRecord:
        """Upload ``src``, verify the stored object, then record it (and, with ``retain``, retire what
        ``retire`` drops in the same manifest write, deleting those objects after it). Returns the new record.

        ``sha256`` may be passed when the caller already hashed ``src`` (the sync's staged snapshot). On a
        failed verification the object is deleted and StorageError raised; the manifest is untouched.
        """
        if self.guard is not None:
            self.guard()
        record = self._upload(src, name, counter, tags, sha256)
        retired: list[ManifestRecord] = []

        def change(manifest: Manifest) -> Manifest:
            manifest = manifest.add(record)
            drops = self.retire(manifest) if self.retire is not None and retain else ()
            retired[:] = [r for r in drops if r.key != record.key]
            return manifest.remove({r.key for r in retired})

        self.update(change)
        self._last_published = record.key
        log.info("checkpoint %s (counter %s, %d bytes) stored as %s", name, counter, record.size, record.key)
        for old in retired:
            try:
                self.store.delete(old.key)
            except StorageError as exc:  # out of the manifest already: an orphan the next retention sweep removes
                log.warning("retention: could not delete %s yet (%s); it is swept later", old.key, exc)
            else:
                log.info("retention: deleted %s (counter %s)", old.key, old.counter)
        return record

    def publish_all(self, files: list[tuple[Path, str, tuple[str, ...]]],
                    forget: set[str] | frozenset[str] = frozenset()) -> list[ManifestRecord]:
        """Upload and verify each ``(src, name, tags)`` (no counter; up to 4 at once), then record them all and
        drop the records keyed in ``forget`` in ONE manifest write: a reader sees all of them or none, and a set
        of files costs one manifest write, not one each (the objects of ``forget`` are deleted by the caller).
        A failed upload raises StorageError with the manifest untouched (objects uploaded before it are left
        for the sweeps, as after a crash)."""
        if self.guard is not None:
            self.guard()
        if len(files) > 1:  # at once: on the Drive mount each upload is a few round trips, mostly waiting
            with ThreadPoolExecutor(min(4, len(files)), thread_name_prefix="publish") as pool:
                futures = [pool.submit(self._upload, src, name, None, tags, None) for src, name, tags in files]
            records = [future.result() for future in futures]  # the first failure is raised, after all ended
        else:
            records = [self._upload(src, name, None, tags, None) for src, name, tags in files]
        if self._last_published in forget:
            self._last_published = None

        def change(manifest: Manifest) -> Manifest:
            for record in records:
                manifest = manifest.add(record)
            return manifest.remove(set(forget))

        self.update(change)
        if records:
            self._last_published = records[-1].key
        for record in records:
            log.info("%s (%d bytes) stored as %s", record.name, record.size, record.key)
        return records

    def _upload(self, src: Path, name: str, counter: int | None, tags: tuple[str, ...], sha256: str | None
                ) -> ManifestRecord:
        """Upload ``src`` under a fresh key and verify the stored object: the record to write (not written)."""
        unknown = set(tags) - set(KNOWN_TAGS)
        if unknown:
            raise ValueError(f"unknown checkpoint tags {sorted(unknown)}; known: {list(KNOWN_TAGS)}")
        size = os.stat(src).st_size
        digest = sha256 or file_sha256(src)
        seq = self.reserve_seq()
        key = checkpoint_key(name, seq, self.store.max_entries_per_folder)
        labels = {"seq": str(seq), "sha256": digest}
        if counter is not None:
            labels["counter"] = str(counter)
        entry = self.store.upload_with_labels(src, key, labels)
        self._verify(key, size, digest, entry)
        return ManifestRecord(name=name, key=key, counter=counter, size=size, sha256=digest, created=self.clock(),
                              session=self.session, file_id=entry.file_id, tags=tuple(tags), seq=seq)

    def _verify(self, key: str, size: int, digest: str, uploaded: StoreEntry) -> None:
        entry = uploaded if self.store.verifies_uploads else self.store.stat(key)
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
        if self._last_published in keys:
            self._last_published = None
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
    "Backoff",
    "Manifest",
    "ManifestRecord",
    "ManifestStore",
    "checkpoint_key",
    "store_holds",
]
