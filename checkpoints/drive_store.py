"""The Drive API store: a job's objects as files in one Drive folder, addressed by file ID.

Layout. Every object is a file directly inside the store folder (``folder_id``), named after its key (for humans
browsing Drive; names are not unique and never used to find anything). The key lives in the file's public
``properties`` (``orch_key``), not ``appProperties``: those are private to the OAuth client that wrote them, and a
job written from Colab (Colab's client) and resumed on Kaggle (a service account) must see the same keys. A key
therefore has at most 112 UTF-8 bytes (Drive's 124-byte limit per property, minus the property name).

Publishing (atomic for readers). ``upload``/``write_bytes`` create a *new* file that carries only
``orch_pending=<key>``, check Drive's size and MD5 against the local ones, and only then set ``orch_key=<key>``
on it (one metadata PATCH) and delete the previous file(s) of that key with ``files.delete`` (permanent, no
trash). A reader sees the old complete object or the new complete object; a crash mid-upload leaves a pending
file that no reader sees and the next upload of that key deletes. If two published files of a key exist (a
crash between publish and delete) the higher ``orch_gen`` wins: set at publish to the time in nanoseconds, but
always above every version already published (a machine whose clock is behind still publishes "newer").

Finding keys. Listings lag (a new file can be missing from ``files.list`` for a while; ``files.get`` by ID sees
it at once), so the store remembers the ID of every file it published or resolved and asks for that ID first;
it falls back to a ``properties has { key='orch_key' and value=... }`` query. ``list`` merges remembered IDs
missing from the listing and drops IDs it deleted that the listing still shows. Other processes (resume on a new machine) find objects by query; by then the
listing has caught up, and the manifest records IDs as well.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from checkpoints.drive_auth import authorized_http_factory, build_drive_service, load_credentials
from checkpoints.drive_layout import (
    FIELDS,
    FOLDER_MIME,
    GEN_PROP,
    KEY_PROP,
    PENDING_PROP,
    check_drive_key,
    entry_of,
    file_epoch,
    generation,
    property_query,
    quote,
)
from checkpoints.drive_retry import DriveNotFound, DriveRetry
from checkpoints.drive_transfer import CHUNK_UNIT, DriveReader, file_digest, open_source, upload_file
from checkpoints.store import CheckpointStore, StoreEntry, check_prefix
from orchestrator.core.atomic import atomic_copy_stream
from orchestrator.core.errors import StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

COPY_BLOCK = 1 << 20  # bytes per write of a download into its temp file
_REPLACED_RETRIES = 25  # times a reader re-resolves a key whose file was replaced under it (a busy writer)


class DriveStore(CheckpointStore):
    """A :class:`CheckpointStore` on Google Drive v3 (see the module docstring for the layout)."""

    name = "drive"

    def __init__(
        self,
        service: Any,
        folder_id: str,
        *,
        http_factory: Callable[[], Any] | None = None,
        shared_drive: bool = False,
        chunk_size: int = 8 << 20,
        retry: DriveRetry | None = None,
    ) -> None:
        """``service``: a Drive v3 client (``build_drive_service``). ``http_factory`` makes one httplib2 client
        per thread (httplib2 is not thread-safe); without it every request goes through the service's own
        client, one at a time."""
        if chunk_size <= 0 or chunk_size % CHUNK_UNIT:
            raise StorageError(f"Drive chunk size {chunk_size} must be a positive multiple of 256 KiB")
        self.folder_id = folder_id
        self.shared_drive = shared_drive
        self.chunk_size = chunk_size
        self.retry = retry or DriveRetry()
        self._files = service.files()
        self._http_factory = http_factory
        self._local = threading.local()
        self._serial = threading.RLock()
        self._ids: dict[str, str] = {}  # key -> ID of the published file this process knows about
        self._ids_lock = threading.Lock()
        self._deleted: set[str] = set()  # IDs this process deleted: listings may still show them for a while

    def __repr__(self) -> str:
        return f"DriveStore(folder_id={self.folder_id!r}{', shared drive' if self.shared_drive else ''})"

    @classmethod
    def from_spec(cls, spec: Any) -> DriveStore:
        """Build from a ``DriveStoreSpec`` (``folder_id``, ``credentials``, ``shared_drive``, ``chunk_size_mb``)."""
        credentials = load_credentials(spec.credentials)
        factory = authorized_http_factory(credentials)
        return cls(
            build_drive_service(factory),
            spec.folder_id,
            http_factory=factory,
            shared_drive=bool(spec.shared_drive),
            chunk_size=int(spec.chunk_size_mb) << 20,
        )

    # -- plumbing --------------------------------------------------------------------------------------------

    def _http(self) -> Any:
        if self._http_factory is None:
            return None  # the service's own client; requests are serialised by _exclusive()
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._http_factory()
        return http

    def _exclusive(self) -> AbstractContextManager[Any]:
        return nullcontext() if self._http_factory is not None else self._serial

    def _call(self, make_request: Callable[[], Any], what: str) -> Any:
        def run() -> Any:
            with self._exclusive():
                return make_request().execute(http=self._http())

        return self.retry.call(run, what)

    @property
    def _drive_params(self) -> dict[str, Any]:
        return {"supportsAllDrives": True} if self.shared_drive else {}

    @property
    def _list_params(self) -> dict[str, Any]:
        if not self.shared_drive:
            return {"spaces": "drive"}
        return {"supportsAllDrives": True, "includeItemsFromAllDrives": True, "corpora": "allDrives"}

    def _folder_missing(self, what: str) -> StorageError:
        hint = "" if self.shared_drive else "; if it is in a shared drive, set shared_drive: true"
        return StorageError(
            f"Drive {what}: the store folder {self.folder_id} was not found or is not shared with these "
            f"credentials (check store.folder_id; share the folder with the service account's e-mail{hint})"
        )

    def check_usable(self) -> None:
        self.verify_folder()

    def sweep_leftovers(self, older_than: float = 24 * 3600.0) -> int:
        return self.sweep_unpublished(older_than)

    def verify_folder(self) -> None:
        """Check that ``folder_id`` is a folder these credentials can see (call at start-up for a clear error)."""
        meta = self._get_folder()
        if meta is None:
            raise self._folder_missing("check of the store folder")
        if meta.get("mimeType") != FOLDER_MIME:
            raise StorageError(f"Drive store folder {self.folder_id} is a {meta.get('mimeType')}, not a folder")

    def _get_folder(self) -> dict[str, Any] | None:
        return self._get(self.folder_id, "check of the store folder", fields="id,name,mimeType,trashed")

    # -- finding files ---------------------------------------------------------------------------------------

    def _query(self, extra: str, what: str) -> Iterator[dict[str, Any]]:
        q = f"{quote(self.folder_id)} in parents and trashed = false" + (f" and {extra}" if extra else "")
        token: str | None = None
        while True:
            page = self._call(self._list_request(q, token), what)
            yield from (meta for meta in page.get("files", []) if meta["id"] not in self._deleted)
            token = page.get("nextPageToken")
            if not token:
                return

    def _list_request(self, q: str, token: str | None) -> Callable[[], Any]:
        def make() -> Any:
            fields = f"nextPageToken,files({FIELDS})"
            return self._files.list(q=q, fields=fields, pageSize=1000, pageToken=token, **self._list_params)

        return make

    def _get(self, file_id: str, what: str, fields: str = FIELDS) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = self._call(
                lambda: self._files.get(fileId=file_id, fields=fields, **self._drive_params), what
            )
        except DriveNotFound:
            return None
        return None if meta.get("trashed") else meta

    def _published(self, key: str) -> list[dict[str, Any]]:
        """Every published file of ``key``, newest generation first (normally one)."""
        found = {m["id"]: m for m in self._query(property_query(KEY_PROP, key), f"lookup of {key!r}")}
        known = self._ids.get(key)
        if known and known not in found:
            meta = self._get(known, f"lookup of {key!r}")
            if meta is not None and (meta.get("properties") or {}).get(KEY_PROP) == key:
                found[known] = meta
        return sorted(found.values(), key=generation, reverse=True)

    def _pending(self, key: str, what: str) -> Iterator[dict[str, Any]]:
        """Unpublished uploads of ``key`` (crash leftovers, or the one being published right now)."""
        return self._query(property_query(PENDING_PROP, key), what)

    def _current(self, key: str) -> dict[str, Any] | None:
        """Metadata of the file a reader of ``key`` should see, by remembered ID first, else by query."""
        known = self._ids.get(key)
        if known:
            meta = self._get(known, f"stat of {key!r}")
            if meta is not None and (meta.get("properties") or {}).get(KEY_PROP) == key:
                return meta
            self._forget(key, known)
        candidates = self._published(key)
        if not candidates:
            return None
        with self._ids_lock:  # never replace an ID a writer recorded meanwhile with a query's (older) answer
            self._ids.setdefault(key, candidates[0]["id"])
        return candidates[0]

    def _forget(self, key: str, file_id: str) -> None:
        """Drop a remembered ID unless another thread already recorded a newer one."""
        with self._ids_lock:
            if self._ids.get(key) == file_id:
                del self._ids[key]

    def _delete_id(self, file_id: str, what: str) -> None:
        try:
            self._call(lambda: self._files.delete(fileId=file_id, **self._drive_params), what)
        except DriveNotFound:
            pass  # already gone
        self._deleted.add(file_id)

    # -- CheckpointStore -------------------------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[StoreEntry]:
        check_prefix(prefix)
        newest: dict[str, tuple[int, dict[str, Any]]] = {}

        def consider(meta: dict[str, Any]) -> None:
            props = meta.get("properties") or {}
            key = props.get(KEY_PROP)
            if key is None or not key.startswith(prefix):
                return
            gen = generation(meta)
            if key not in newest or gen > newest[key][0]:
                newest[key] = (gen, meta)

        for meta in self._query("", f"listing of {prefix!r}"):
            consider(meta)
        for key, file_id in list(self._ids.items()):  # published here but maybe not listed yet
            if key.startswith(prefix) and key not in newest:
                found = self._get(file_id, f"listing of {prefix!r}")
                if found is None:
                    self._forget(key, file_id)
                else:
                    consider(found)
        return [entry_of(meta) for _g, meta in sorted(newest.values(), key=lambda gm: gm[1]["properties"][KEY_PROP])]

    def stat(self, key: str) -> StoreEntry | None:
        meta = self._current(check_drive_key(key))
        return None if meta is None else entry_of(meta)

    def _reader(self, meta: dict[str, Any], key: str) -> DriveReader:
        request = self._files.get_media(fileId=meta["id"], **self._drive_params)
        if self._http_factory is not None:
            request.http = self._http()
        return DriveReader(
            request,
            expected_size=int(meta.get("size", 0)),
            expected_md5=meta.get("md5Checksum"),
            chunk_size=self.chunk_size,
            retry=self.retry,
            what=f"download of {key!r}",
        )

    def _fetch(self, key: str, sink: Callable[[DriveReader], object]) -> StoreEntry:
        """Stream the current file of ``key`` into ``sink``; re-resolve if it was replaced mid-read."""
        check_drive_key(key)
        for _ in range(_REPLACED_RETRIES):
            meta = self._current(key)
            if meta is None:
                raise StorageError(f"no object {key!r} in the Drive store folder {self.folder_id}")
            try:
                with self._exclusive():
                    sink(self._reader(meta, key))
                return entry_of(meta)
            except DriveNotFound:
                self._forget(key, meta["id"])  # replaced by a newer upload (or deleted): look again
        raise StorageError(f"Drive object {key!r} kept changing while it was read; retry later")

    def download(self, key: str, dest: Path) -> StoreEntry:
        return self._fetch(key, lambda reader: atomic_copy_stream(reader, Path(dest), COPY_BLOCK))  # type: ignore[arg-type]

    def read_bytes(self, key: str) -> bytes:
        out: list[bytes] = []
        self._fetch(key, lambda reader: out.append(reader.read()))
        return out[-1]

    def upload(self, src: Path, key: str) -> StoreEntry:
        check_drive_key(key)
        with open_source(Path(src)) as fh:
            return self._publish(fh, key)

    def write_bytes(self, key: str, data: bytes) -> StoreEntry:
        check_drive_key(key)
        return self._publish(io.BytesIO(bytes(data)), key)

    def delete(self, key: str) -> None:
        check_drive_key(key)
        what = f"delete of {key!r}"
        for meta in self._published(key) + list(self._pending(key, what)):
            self._delete_id(meta["id"], what)
        self._ids.pop(key, None)

    def sweep_unpublished(self, older_than: float = 24 * 3600) -> int:
        """Delete unpublished uploads (left by crashes mid-publish) older than ``older_than`` seconds, of any
        key; returns how many. Call it at start-up of a session that holds the lease."""
        cutoff = time.time() - older_than
        swept = 0
        for meta in self._query("", "sweep of unpublished uploads"):
            props = meta.get("properties") or {}
            if PENDING_PROP in props and KEY_PROP not in props and file_epoch(meta["modifiedTime"]) < cutoff:
                self._delete_id(meta["id"], f"removal of the unpublished upload of {props[PENDING_PROP]!r}")
                swept += 1
        return swept

    # -- publishing ------------------------------------------------------------------------------------------

    def stage(self, fh: Any, key: str) -> dict[str, Any]:
        """Upload ``fh`` as a new, unpublished file of ``key`` and verify it; returns its metadata."""
        size, md5 = file_digest(fh)
        body = {
            "name": key,
            "parents": [self.folder_id],
            "mimeType": "application/octet-stream",
            "properties": {PENDING_PROP: key},
        }
        what = f"upload of {key!r}"
        params = {"fields": FIELDS, **self._drive_params}
        try:
            with self._exclusive():
                meta = upload_file(
                    self._files,
                    fh,
                    size,
                    body,
                    chunk_size=self.chunk_size,
                    retry=self.retry,
                    http=self._http,
                    params=params,
                    what=what,
                )
        except DriveNotFound as exc:
            raise self._folder_missing(what) from exc
        if int(meta.get("size", -1)) != size or meta.get("md5Checksum") != md5:
            self._delete_id(meta["id"], what)
            raise StorageError(
                f"Drive {what}: Drive holds {meta.get('size')} bytes (md5 {meta.get('md5Checksum')}) but the local "
                f"file has {size} bytes (md5 {md5}); nothing was published, retry the upload"
            )
        return meta

    def _publish(self, fh: Any, key: str) -> StoreEntry:
        staged = self.stage(fh, key)
        what = f"publish of {key!r}"
        published = self._published(key)
        previous = [m["id"] for m in published]
        # newer than every version seen, even if this machine's clock is behind the one that wrote them
        gen = max([time.time_ns()] + [generation(m) + 1 for m in published])
        meta = self._call(
            lambda: self._files.update(
                fileId=staged["id"],
                body={"properties": {KEY_PROP: key, PENDING_PROP: None, GEN_PROP: str(gen)}},
                fields=FIELDS,
                **self._drive_params,
            ),
            what,
        )
        self._ids[key] = meta["id"]
        stale = previous + [m["id"] for m in self._pending(key, what)]
        for file_id in stale:
            if file_id != meta["id"]:
                try:
                    self._delete_id(file_id, f"removal of the previous version of {key!r}")
                except StorageError as exc:  # published already; readers pick the newest; the next publish retries
                    log.warning("Drive store: %s (left for the next upload or delete of %r)", exc, key)
        return entry_of(meta)
