"""Live sync: copy checkpoints from the local output folder to the store while training runs.

The trainer writes to fast local disk; this watcher (watchdog events plus a periodic rescan as a safety net)
notices new or rewritten files matching the patterns and, in a background thread:

1. waits until the file is complete: its (size, mtime, inode) is unchanged across ``stable_polls`` polls;
2. copies it to a private staging snapshot and checks that the source did not change during the copy;
3. validates the *snapshot* (non-empty, not an error page, the job kind's format check) and hashes it;
4. publishes the snapshot through the manifest (upload, verify, then record).

A file rewritten in place mid-copy therefore never reaches the store torn: the snapshot fails step 2 or 3
and is retried once the file is stable again. Rapid rewrites coalesce (one pending entry per file; only the
newest stable version is copied), and a version identical to the last published one is not sent again.
``flush(timeout)`` on a clean stop publishes what is pending before the lease is released.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from checkpoints.discovery import DEFAULT_PATTERNS, counter_from_name
from checkpoints.filecopy import copy_fd
from checkpoints.manifest import ManifestRecord, ManifestStore, store_holds
from checkpoints.validators import Validator, file_sha256, generic_validator
from orchestrator.core.atomic import is_temp_name
from orchestrator.core.errors import LeaseLostError, OrchestratorError, QuotaExceededError, StoreVanishedError
from orchestrator.core.logs import get_logger

if TYPE_CHECKING:
    from typing_extensions import Self

log = get_logger(__name__)


class _StopRaceFilter(logging.Filter):
    """Drop watchdog's ERROR for its own stop race (the emitter was reading when the observer stopped).

    It is harmless (watchdog returns as if there were no event) but reached users as an error line when a
    session ended.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())

Signature = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class _Pending:
    noticed: float  # clock() when the first unpublished change was seen
    signature: Signature | None = None
    stable: int = 0
    generation: int = 0  # bumped by every change event
    retry_at: float = 0.0
    failures: int = 0


@dataclass(frozen=True)
class SyncStatus:
    """How far the store is behind the local folder."""

    pending: tuple[str, ...]  # file names waiting to be published
    lag_seconds: float  # age of the oldest unpublished change (0 when in sync)
    published: int  # checkpoints published by this watcher
    last_published: ManifestRecord | None
    last_error: str | None


def _signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class CheckpointSync:
    """Watches ``folder`` and publishes complete checkpoint files into the store behind ``manifests``."""

    def __init__(
        self,
        folder: Path,
        manifests: ManifestStore,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        validator: Validator | None = None,
        staging: Path | None = None,
        poll_interval: float = 0.5,
        stable_polls: int = 2,
        rescan_interval: float = 10.0,
        on_published: Callable[[ManifestRecord], None] | None = None,
        on_paused: Callable[[str, float], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.manifests = manifests
        self.patterns = tuple(patterns)
        self.validator = generic_validator(validator)
        self.staging = staging or self.folder.parent / f".{self.folder.name}.sync-staging"
        self.poll_interval = poll_interval
        self.stable_polls = max(1, stable_polls)
        self.rescan_interval = rescan_interval
        self.on_published = on_published
        self.on_paused = on_paused  # (why, seconds) when uploads pause for a quota (training goes on)
        self._paused_until = -math.inf  # clock() before which no upload is tried (a store quota)
        self.on_fatal = on_fatal
        #: a fault retrying cannot fix (the store vanished, the lease was lost): nothing more is published
        self.fatal: str | None = None
        self.clock = clock
        self.log = logger or log
        self._pending: dict[Path, _Pending] = {}
        self._published_by_name: dict[str, tuple[int, str]] = {}  # name -> (size, sha256) in the store
        self._settled_sig: dict[Path, Signature] = {}  # file signature last published, rejected or skipped
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._published = 0
        self._last_record: ManifestRecord | None = None
        self._last_error: str | None = None
        self._next_rescan = 0.0

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _held(self, record: ManifestRecord) -> bool:
        """The store holds ``record``'s object with its size (a fault while checking: not known to be held)."""
        try:
            return store_holds(self.manifests.store, record)
        except (OrchestratorError, OSError):
            return False

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        for leftover in self.staging.iterdir():
            leftover.unlink(missing_ok=True)
        for name, record in self.manifests.load().latest_by_name().items():
            # only what the store holds counts as sent: on a lazy mount the manifest may have reached Drive
            # while the object it names did not, and the same file written again must then be sent again
            if self._held(record):
                self._published_by_name[name] = (record.size, record.sha256)
        observer = Observer()
        observer.schedule(_Handler(self), str(self.folder), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._rescan()
        self._thread = threading.Thread(target=self._run, name="checkpoint-sync", daemon=True)
        self._thread.start()
        return self

    def flush(self, timeout: float) -> bool:
        """Wait until every pending file is published (or rejected); False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        self._rescan()
        with self._cond:
            for entry in self._pending.values():
                entry.retry_at = 0.0  # a clean stop retries at once instead of waiting out a backoff
            self._cond.notify_all()
            while (self._pending or self._busy) and self.fatal is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.log.warning("checkpoint sync: flush timed out with %d files pending", len(self._pending))
                    return False
                if not self._busy and self._pending and all(
                    max(p.retry_at, self._paused_until) - self.clock() > left for p in self._pending.values()
                ):  # paused (a store quota) beyond the timeout: waiting cannot help
                    self.log.warning(
                        "checkpoint sync: %d files wait for a paused store (%s); not waiting for them",
                        len(self._pending),
                        self._last_error,
                    )
                    return False
                self._cond.wait(min(left, self.poll_interval))
        return self.fatal is None

    def stop(self, flush_timeout: float | None = None) -> bool:
        """Optionally flush, then stop watching. Returns whether the flush completed (True without one)."""
        flushed = True if flush_timeout is None else self.flush(flush_timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(10)
        if self._thread is not None:
            self._thread.join(60)
        return flushed

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> SyncStatus:
        with self._cond:
            now = self.clock()
            lag = max((now - p.noticed for p in self._pending.values()), default=0.0)
            return SyncStatus(
                pending=tuple(sorted(p.name for p in self._pending)),
                lag_seconds=lag,
                published=self._published,
                last_published=self._last_record,
                last_error=self._last_error,
            )

    # -- events --------------------------------------------------------------------------------------------

    def matches(self, path: Path) -> bool:
        name = path.name
        if is_temp_name(name) or name.startswith("."):
            return False
        if self.staging in path.parents:
            return False
        return any(fnmatch.fnmatch(name, pattern) for pattern in self.patterns)

    def notice(self, path: Path) -> None:
        """Mark ``path`` as changed (called by the watchdog handler and the rescan)."""
        if not self.matches(path):
            return
        with self._cond:
            entry = self._pending.get(path)
            if entry is None:
                entry = self._pending[path] = _Pending(noticed=self.clock())
            entry.generation += 1
            entry.stable = 0
            self._cond.notify_all()

    def _rescan(self) -> None:
        """Safety net for missed events: any matching file whose signature is not the published one."""
        self._next_rescan = self.clock() + self.rescan_interval
        for root, dirs, files in os.walk(self.folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(root) / name
                if not self.matches(path) or path in self._pending:
                    continue
                sig = _signature(path)
                if sig is not None and self._settled_sig.get(path) != sig:
                    self.notice(path)

    # -- worker --------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping or self.fatal is not None:
                    return
                self._cond.wait(self.poll_interval)
                if self._stopping:
                    return
                paths = list(self._pending)
                self._busy = bool(paths)
            try:
                if self.clock() >= self._next_rescan:
                    self._rescan()
                for path in paths:
                    self._step(path)
            except (StoreVanishedError, LeaseLostError) as exc:
                self._give_up(str(exc))
            except OSError as exc:  # the local folder or the home failed (full, read-only): retried next poll
                self._note_fault(f"{exc.filename or ''}: {exc.strerror or exc}")
            except Exception as exc:  # keep the watcher alive; report the bug
                self.log.exception("checkpoint sync: unexpected error")
                self._last_error = f"unexpected error: {exc!r}"
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _step(self, path: Path) -> None:
        with self._cond:
            entry = self._pending.get(path)
            if entry is None or self.clock() < max(entry.retry_at, self._paused_until):
                return
            generation = entry.generation
        sig = _signature(path)
        if sig is None:  # deleted (e.g. rotated away): nothing to publish
            self._done(path, generation)
            return
        if sig == self._settled_sig.get(path):  # an event without a content change
            self._done(path, generation)
            return
        with self._cond:
            if sig != entry.signature:
                entry.signature, entry.stable = sig, 0
                return
            entry.stable += 1
            if entry.stable < self.stable_polls:
                return
        self._snapshot_and_publish(path, sig, entry, generation)

    def _snapshot_and_publish(self, path: Path, sig: Signature, entry: _Pending, generation: int) -> None:
        staged = self.staging / f"{path.name}.{os.getpid()}.{generation}"
        try:
            try:
                copied = _copy_snapshot(path, staged)
            except FileNotFoundError:
                self._done(path, generation)
                return
            if copied != sig[0] or _signature(path) != sig:
                self.log.debug("checkpoint sync: %s changed during the snapshot; retrying", path.name)
                with self._cond:
                    entry.stable = 0
                return
            verdict = self.validator.validate(staged)
            if not verdict.ok:
                reason = verdict.reason.replace(staged.name, path.name)
                self.log.warning("checkpoint sync: not publishing %s: %s", path.name, reason)
                self._settled_sig[path] = sig
                self._done(path, generation)
                return
            digest = file_sha256(staged)
            if self._published_by_name.get(path.name) == (copied, digest):
                self._settled_sig[path] = sig  # already in the store (e.g. the restored checkpoint)
                self._done(path, generation)
                return
            counter = verdict.counter if verdict.counter is not None else counter_from_name(path.name)
            try:
                record = self.manifests.publish(staged, path.name, counter, sha256=digest)
            except (StoreVanishedError, LeaseLostError) as exc:
                self._give_up(str(exc))
                return
            except QuotaExceededError as exc:
                message = f"store quota exceeded, sync paused for an hour: {exc}"
                self._fail(path, entry, message, 3600.0)
                self._paused_until = self.clock() + 3600.0  # every upload waits, not just this file's
                if self.on_paused is not None:
                    self.on_paused(message, 3600.0)
                return
            except (OrchestratorError, OSError) as exc:
                # short waits: once the fault clears, the next attempt follows within seconds
                self._fail(path, entry, f"publishing {path.name} failed: {exc}", min(5.0, 2.0**entry.failures))
                return
            self._published_by_name[path.name] = (copied, digest)
            self._settled_sig[path] = sig
            with self._cond:
                self._published += 1
                self._last_record = record
                self._last_error = None
            lag = self.clock() - entry.noticed
            self.log.info("checkpoint sync: published %s (counter %s), lag %.1fs", path.name, counter, lag)
            self._done(path, generation)
            if self.on_published is not None:
                self.on_published(record)
        finally:
            staged.unlink(missing_ok=True)

    def _note_fault(self, message: str) -> None:
        if message != self._last_error:
            self.log.warning("checkpoint sync: %s (retrying)", message)
        self._last_error = message

    def _give_up(self, message: str) -> None:
        self.log.error("checkpoint sync stopped: %s", message)
        with self._cond:
            self.fatal = self._last_error = message
            self._pending.clear()
            self._cond.notify_all()
        if self.on_fatal is not None:
            self.on_fatal(message)

    def _fail(self, path: Path, entry: _Pending, message: str, wait: float) -> None:
        # one line per fault, not per retry: repeats of the same fault are counted
        if entry.failures == 0 or message != self._last_error:
            self.log.warning("checkpoint sync: %s (retrying in %.0fs)", message, wait)
        elif entry.failures in (10, 100, 1000):
            self.log.warning("checkpoint sync: still failing after %d attempts: %s", entry.failures, message)
        with self._cond:
            entry.failures += 1
            entry.retry_at = self.clock() + wait
            entry.stable = 0
            self._last_error = message

    def _done(self, path: Path, generation: int) -> None:
        """Drop the pending entry unless the file changed again since ``generation`` was read."""
        with self._cond:
            entry = self._pending.get(path)
            if entry is not None and entry.generation == generation:
                del self._pending[path]
            self._cond.notify_all()


def _copy_snapshot(src: Path, dest: Path) -> int:
    """Private copy of ``src`` (kernel copy, no fsync: it is scratch); returns bytes copied."""
    in_fd = os.open(src, os.O_RDONLY)
    try:
        out_fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            return copy_fd(in_fd, out_fd)
        finally:
            os.close(out_fd)
    finally:
        os.close(in_fd)


class _Handler(FileSystemEventHandler):
    """watchdog event handler: every created/modified/moved-in file is noticed."""

    def __init__(self, sync: CheckpointSync) -> None:
        super().__init__()
        self.sync = sync

    # "opened"/"closed_no_write" come from readers (our own snapshot!) and must not re-trigger a copy
    EVENTS = frozenset({EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_CLOSED})

    def dispatch(self, event: FileSystemEvent) -> None:
        if getattr(event, "is_directory", False) or getattr(event, "event_type", "") not in self.EVENTS:
            return
        for attr in ("dest_path", "src_path"):
            raw = getattr(event, attr, "")
            if raw:
                path = Path(os.fsdecode(raw))
                if path.exists():
                    self.sync.notice(path)
                    return
