"""The Drive API store: a job's objects as files under one Drive folder, addressed by file ID.

Layout (see :mod:`checkpoints.drive_layout`). Objects are files in real sub-folders of the store folder, each
under its own name, for people browsing Drive; the store finds them by the public ``properties`` ``orch_root``
(the store folder) and ``orch_key`` (the key), never by name or folder. ``properties``, not ``appProperties``:
those are private to the OAuth client that wrote them, and a job written from Colab (Colab's client) and resumed
on Kaggle (a service account) must see the same keys. A key therefore has at most 112 UTF-8 bytes.

Publishing (atomic for readers). A new object is one new file, created complete: a multipart upload or a
resumable session only makes a file when its last byte arrived. Its size and MD5 in Drive's answer are checked
against the local ones; a mismatch deletes it and raises. ``upload`` of a key that exists creates a new file
with a higher ``orch_gen`` and then deletes the old file(s) with ``files.delete`` (permanent, no trash): readers
pick the highest generation. ``write_bytes`` (small objects: the manifest) replaces the content of the existing
file in place (``files.update``: a new revision at the same ID, atomic for readers), so the manifest keeps one
stable file ID for the store's whole life, and that ID is pinned in the store folder's properties.

Finding keys. Listings lag (a new file can be missing from ``files.list`` for a while, a deleted one can still be
listed; ``files.get`` by ID is exact), so the store asks for a known ID first: IDs it wrote or resolved, IDs the
manifest records (``remember``), and pinned IDs from the store folder. It falls back to a property query. A
listed file that answers 404 (a ghost of a delete) is dropped and the key resolved again after a backoff. Shared
drives are searched with ``corpora=drive`` and the drive's ``driveId``; a search Drive reports as
``incompleteSearch`` is retried, then raises (a key missing from an incomplete answer is not "absent").
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from checkpoints.drive_auth import authorized_http_factory, build_drive_service, drive_api_url, load_credentials
from checkpoints.drive_layout import (
    FIELDS,
    FOLDER_FIELDS,
    FOLDER_MIME,
    GEN_PROP,
    KEY_PROP,
    PENDING_PROP,
    ROOT_PROP,
    check_drive_key,
    display_name,
    entry_of,
    file_epoch,
    folder_path,
    generation,
    label_properties,
    pin_property,
    property_query,
    quote,
)
from checkpoints.drive_retry import DriveNotFound, DriveRetry
from checkpoints.drive_transfer import CHUNK_UNIT, DriveReader, file_digest, open_source, upload_file
from checkpoints.manifest import MANIFEST_KEY, Backoff
from checkpoints.store import CheckpointStore, StoreEntry, check_prefix
from orchestrator.core.atomic import atomic_copy_stream
from orchestrator.core.errors import StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

COPY_BLOCK = 1 << 20  # bytes per write of a download into its temp file
_REPLACED_RETRIES = 25  # times a reader re-resolves a key whose file was replaced under it (a busy writer)
MIME = "application/octet-stream"


class DriveStore(CheckpointStore):
    """A :class:`CheckpointStore` on Google Drive v3 (see the module docstring for the layout)."""

    name = "drive"
    replaces_in_place = True
    verifies_uploads = True

    def __init__(
        self,
        service: Any,
        folder_id: str,
        *,
        http_factory: Callable[[], Any] | None = None,
        shared_drive: bool = False,
        chunk_size: int = 8 << 20,
        retry: DriveRetry | None = None,
        backoff: Backoff | None = None,
        pinned_keys: tuple[str, ...] = (MANIFEST_KEY,),
    ) -> None:
        """``service``: a Drive v3 client (``build_drive_service``). ``http_factory`` makes one httplib2 client
        per thread (httplib2 is not thread-safe); without it every request goes through the service's own
        client, one at a time. ``backoff``: waits while Drive's listing catches up (ghosts, incomplete searches).
        ``pinned_keys``: keys whose file ID is pinned in the store folder's properties."""
        if chunk_size <= 0 or chunk_size % CHUNK_UNIT:
            raise StorageError(f"Drive chunk size {chunk_size} must be a positive multiple of 256 KiB")
        self.folder_id = folder_id
        self.shared_drive = shared_drive
        self.chunk_size = chunk_size
        self.retry = retry or DriveRetry()
        self.backoff = backoff or Backoff()
        self.pinned_keys = frozenset(pinned_keys)
        self._files = service.files()
        self._http_factory = http_factory
        self._local = threading.local()
        self._serial = threading.RLock()
        self._ids: dict[str, str] = {}  # key -> ID of the published file this process knows about
        self._ids_lock = threading.Lock()
        self._deleted: set[str] = set()  # IDs deleted (or found gone): listings may still show them for a while
        self._folders: dict[tuple[str, ...], str] = {(): folder_id}  # folder path below the store -> ID
        self._folders_lock = threading.Lock()
        self._root: dict[str, Any] | None = None  # the store folder's metadata (driveId, pins, capabilities)

    def __repr__(self) -> str:
        return f"DriveStore(folder_id={self.folder_id!r}{', shared drive' if self.shared_drive else ''})"

    @classmethod
    def from_spec(cls, spec: Any) -> DriveStore:
        """Build from a ``DriveStoreSpec`` (``folder_id``, credentials, ``shared_drive``, ``chunk_size_mb``); the
        API root is ``ORCHESTRATOR_DRIVE_API_URL`` when set (tests, private endpoints), else Google's."""
        credentials = load_credentials(spec.credentials, getattr(spec, "credentials_env", None))
        factory = authorized_http_factory(credentials)
        return cls(
            build_drive_service(factory, root_url=drive_api_url()),
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

    def _list_params(self) -> dict[str, Any]:
        if not self.shared_drive:
            return {"spaces": "drive"}
        drive_id = self._root_meta().get("driveId")
        if not drive_id:  # shared_drive: true on a My Drive folder: search My Drive with the flags
            return {"supportsAllDrives": True, "includeItemsFromAllDrives": True, "corpora": "user"}
        return {"supportsAllDrives": True, "includeItemsFromAllDrives": True, "corpora": "drive", "driveId": drive_id}

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
        """Check that ``folder_id`` is a folder these credentials can see and, in a shared drive, delete in
        (call at start-up for a clear error)."""
        meta = self._root_meta(refresh=True)
        if meta.get("mimeType") != FOLDER_MIME:
            raise StorageError(f"Drive store folder {self.folder_id} is a {meta.get('mimeType')}, not a folder")
        if meta.get("driveId") and not (meta.get("capabilities") or {}).get("canDeleteChildren", True):
            raise StorageError(
                f"Drive store folder {self.folder_id} is in a shared drive where these credentials may not delete "
                "files: retention and superseded manifests need deletes, which in a shared drive need the Manager "
                "role. Give the account (the service account's e-mail) Manager on the shared drive; Content "
                "manager is not enough"
            )

    def _root_meta(self, refresh: bool = False) -> dict[str, Any]:
        if self._root is None or refresh:
            meta = self._get(self.folder_id, "check of the store folder", fields=FOLDER_FIELDS)
            if meta is None:
                raise self._folder_missing("check of the store folder")
            self._root = meta
        return self._root

    # -- finding files ---------------------------------------------------------------------------------------

    def _query(self, extra: str, what: str, scope: str | None = None) -> list[dict[str, Any]]:
        """Files matching ``extra`` among the store's objects (or, with ``scope``, a raw scope term); an answer
        Drive flags ``incompleteSearch`` is retried with backoff, then StorageError."""
        base = scope or property_query(ROOT_PROP, self.folder_id)
        q = f"{base} and trashed = false" + (f" and {extra}" if extra else "")
        waits = self.backoff.waits()
        while True:
            found, incomplete = self._query_pages(q, what)
            if not incomplete:
                return [meta for meta in found if meta["id"] not in self._deleted]
            wait = next(waits, None)
            if wait is None:
                raise StorageError(
                    f"Drive {what}: Drive kept answering with an incomplete search (incompleteSearch) after "
                    f"{self.backoff.attempts} retries, so a missing file cannot be told from an unsearched one; "
                    "retry later (for a folder in a shared drive set shared_drive: true)"
                )
            log.warning("Drive %s: the search was incomplete; retrying in %.1fs", what, wait)
            self.backoff.sleep(wait)

    def _query_pages(self, q: str, what: str) -> tuple[list[dict[str, Any]], bool]:
        found: list[dict[str, Any]] = []
        incomplete = False
        token: str | None = None
        while True:
            page = self._call(self._list_request(q, token), what)
            found.extend(page.get("files", []))
            incomplete = incomplete or bool(page.get("incompleteSearch"))
            token = page.get("nextPageToken")
            if not token:
                return found, incomplete

    def _list_request(self, q: str, token: str | None) -> Callable[[], Any]:
        def make() -> Any:
            fields = f"nextPageToken,incompleteSearch,files({FIELDS})"
            return self._files.list(q=q, fields=fields, pageSize=1000, pageToken=token, **self._list_params())

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
        if not found and key in self.pinned_keys:  # a store written before folders (flat, no orch_root)
            legacy = f"{quote(self.folder_id)} in parents and {property_query(KEY_PROP, key)}"
            found = {m["id"]: m for m in self._query("", f"lookup of {key!r}", scope=legacy)}
        known = self._ids.get(key)
        if known and known not in found:
            meta = self._get(known, f"lookup of {key!r}")
            if meta is not None and (meta.get("properties") or {}).get(KEY_PROP) == key:
                found[known] = meta
        return sorted(found.values(), key=generation, reverse=True)

    def _pending(self, key: str, what: str) -> list[dict[str, Any]]:
        """Unpublished uploads of ``key`` (left by crashes of older versions, which staged before publishing)."""
        return self._query(property_query(PENDING_PROP, key), what)

    def _known_id(self, key: str) -> str | None:
        """An ID for ``key`` without a listing: remembered, or pinned in the store folder's properties."""
        known = self._ids.get(key)
        if known is None and key in self.pinned_keys:
            known = (self._root_meta().get("properties") or {}).get(pin_property(key))
        return known

    def _current(self, key: str) -> dict[str, Any] | None:
        """Metadata of the file a reader of ``key`` should see: by known ID first, else by query."""
        known = self._known_id(key)
        if known and known not in self._deleted:
            meta = self._get(known, f"stat of {key!r}")
            if meta is not None and (meta.get("properties") or {}).get(KEY_PROP) == key:
                with self._ids_lock:
                    self._ids.setdefault(key, known)
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

    def _delete_id(self, file_id: str, what: str) -> bool:
        """Delete one file permanently; False if it was already gone."""
        try:
            self._call(lambda: self._files.delete(fileId=file_id, **self._drive_params), what)
        except DriveNotFound:
            self._deleted.add(file_id)
            return False
        self._deleted.add(file_id)
        return True

    def remember(self, key: str, file_id: str) -> None:
        check_drive_key(key)
        if file_id not in self._deleted:
            with self._ids_lock:
                self._ids.setdefault(key, file_id)

    # -- folders ---------------------------------------------------------------------------------------------

    def _folder_for(self, key: str) -> str:
        """ID of the sub-folder that holds ``key``'s file, found or created (once per process and folder)."""
        parts = folder_path(key)
        with self._folders_lock:
            for depth in range(1, len(parts) + 1):
                path = parts[:depth]
                if path not in self._folders:
                    self._folders[path] = self._find_or_make_folder(path[-1], self._folders[path[:-1]])
            return self._folders[parts]

    def _find_or_make_folder(self, name: str, parent: str) -> str:
        what = f"lookup of the folder {name!r}"
        scope = f"{quote(parent)} in parents and name = {quote(name)} and mimeType = {quote(FOLDER_MIME)}"
        found = self._query("", what, scope=scope)
        if found:  # duplicates (two sessions raced inside a listing lag) are harmless: nothing is found by folder
            return str(found[0]["id"])
        body = {"name": name, "mimeType": FOLDER_MIME, "parents": [parent]}
        try:
            meta = self._call(lambda: self._files.create(body=body, fields="id", **self._drive_params), what)
        except DriveNotFound as exc:
            raise self._folder_missing(f"creation of the folder {name!r}") from exc
        return str(meta["id"])

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
        """Stream the current file of ``key`` into ``sink``. A file replaced mid-read is resolved again at once;
        a listed file that is gone (a ghost of a delete, while the listing lags) is waited out with backoff."""
        check_drive_key(key)
        waits = self.backoff.waits()
        ghosts = 0
        for _ in range(_REPLACED_RETRIES + self.backoff.attempts):
            meta = self._current(key)
            if meta is None:
                if ghosts:
                    wait = next(waits, None)
                    if wait is not None:  # only ghosts were listed: the live file may not be listed yet
                        self.backoff.sleep(wait)
                        continue
                raise StorageError(f"no object {key!r} in the Drive store folder {self.folder_id}")
            try:
                with self._exclusive():
                    sink(self._reader(meta, key))
                return entry_of(meta)
            except DriveNotFound:
                replaced = self._ids.get(key) not in (None, meta["id"])
                self._forget(key, meta["id"])
                self._deleted.add(meta["id"])
                if not replaced:
                    ghosts += 1
        raise StorageError(f"Drive object {key!r} kept changing while it was read; retry later")

    def download(self, key: str, dest: Path) -> StoreEntry:
        return self._fetch(key, lambda reader: atomic_copy_stream(reader, Path(dest), COPY_BLOCK))  # type: ignore[arg-type]

    def read_bytes(self, key: str) -> bytes:
        out: list[bytes] = []
        self._fetch(key, lambda reader: out.append(reader.read()))
        return out[-1]

    def upload(self, src: Path, key: str) -> StoreEntry:
        return self.upload_with_labels(src, key, {})

    def upload_with_labels(self, src: Path, key: str, labels: dict[str, str]) -> StoreEntry:
        check_drive_key(key)
        with open_source(Path(src)) as fh:
            return self._publish_new(fh, key, labels)

    def write_bytes(self, key: str, data: bytes) -> StoreEntry:
        """Replace ``key``'s content in place (same file ID, a new revision) or create it."""
        check_drive_key(key)
        fh = io.BytesIO(bytes(data))
        known = self._known_id(key)
        if known and known not in self._deleted:
            try:
                return self._replace_content(fh, key, known, generation_floor=0)
            except DriveNotFound:
                self._forget(key, known)
        published = self._published(key)
        if not published:
            entry = self._publish_new(fh, key, {}, published=[])
            self._pin(key, str(entry.file_id))
            return entry
        newest, *older = published
        entry = self._replace_content(fh, key, newest["id"], generation_floor=generation(newest) + 1)
        self._delete_versions([m["id"] for m in older], key)
        self._pin(key, newest["id"])
        return entry

    def delete(self, key: str) -> None:
        check_drive_key(key)
        what = f"delete of {key!r}"
        with self._ids_lock:
            known = self._ids.pop(key, None)
        if known and self._delete_id(known, what):
            return  # the one file this process knows (steady state); duplicates are swept at session start
        for meta in self._published(key) + self._pending(key, what):
            self._delete_id(meta["id"], what)

    def sweep_unpublished(self, older_than: float = 24 * 3600) -> int:
        """Delete unpublished uploads older than ``older_than`` seconds and superseded duplicates of a key (a
        crash between publishing a new version and deleting the old one); returns how many. Call it at the
        start of a session that holds the lease."""
        cutoff = time.time() - older_than
        swept = 0
        newest: dict[str, dict[str, Any]] = {}
        for meta in self._query("", "sweep of unpublished uploads"):
            props = meta.get("properties") or {}
            if KEY_PROP in props:
                key = props[KEY_PROP]
                other = newest.get(key)
                if other is not None:
                    older, newest[key] = sorted((other, meta), key=generation)
                    if self._delete_id(older["id"], f"removal of a superseded version of {key!r}"):
                        swept += 1
                else:
                    newest[key] = meta
            elif PENDING_PROP in props and file_epoch(meta["modifiedTime"]) < cutoff:
                self._delete_id(meta["id"], f"removal of the unpublished upload of {props[PENDING_PROP]!r}")
                swept += 1
        return swept

    # -- publishing ------------------------------------------------------------------------------------------

    def _send(self, fh: Any, key: str, body: dict[str, Any], file_id: str | None = None) -> dict[str, Any]:
        """Upload ``fh`` (a new file, or new content of ``file_id``), verify Drive's size and MD5; returns the
        file's metadata. A new file that Drive holds differently is deleted."""
        size, md5 = file_digest(fh)
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
                    file_id=file_id,
                )
        except DriveNotFound as exc:
            if file_id is not None:
                raise
            raise self._folder_missing(what) from exc
        if int(meta.get("size", -1)) != size or meta.get("md5Checksum") != md5:
            if file_id is None:
                self._delete_id(meta["id"], what)
            raise StorageError(
                f"Drive {what}: Drive holds {meta.get('size')} bytes (md5 {meta.get('md5Checksum')}) but the local "
                f"file has {size} bytes (md5 {md5}); "
                + ("nothing was published, retry the upload" if file_id is None else "write it again")
            )
        return meta

    def stage(self, fh: Any, key: str) -> dict[str, Any]:
        """Upload ``fh`` as an unpublished file of ``key`` (what older versions left when they crashed before
        publishing; readers never see it, the sweep removes it)."""
        body = {
            "name": display_name(key),
            "parents": [self._folder_for(key)],
            "mimeType": MIME,
            "properties": {ROOT_PROP: self.folder_id, PENDING_PROP: key},
        }
        return self._send(fh, key, body)

    def _publish_new(
        self, fh: Any, key: str, labels: dict[str, str], published: Sequence[dict[str, Any]] | None = None
    ) -> StoreEntry:
        """Create a new published file of ``key``, newer than every version seen, then delete those."""
        if published is None:
            published = self._published(key)
        # newer than every version seen, even if this machine's clock is behind the one that wrote them
        gen = max([time.time_ns()] + [generation(m) + 1 for m in published])
        body = {
            "name": display_name(key),
            "parents": [self._folder_for(key)],
            "mimeType": MIME,
            "properties": {ROOT_PROP: self.folder_id, KEY_PROP: key, GEN_PROP: str(gen)},
        }
        if labels:
            body["appProperties"] = label_properties(labels)
        meta = self._send(fh, key, body)
        with self._ids_lock:
            self._ids[key] = meta["id"]
        self._delete_versions([m["id"] for m in published if m["id"] != meta["id"]], key)
        return entry_of(meta)

    def _replace_content(self, fh: Any, key: str, file_id: str, generation_floor: int) -> StoreEntry:
        gen = max(time.time_ns(), generation_floor)
        meta = self._send(fh, key, {"properties": {GEN_PROP: str(gen)}}, file_id=file_id)
        if (meta.get("properties") or {}).get(KEY_PROP) != key:
            raise DriveNotFound(f"Drive file {file_id} no longer holds {key!r}")
        with self._ids_lock:
            self._ids[key] = file_id
        return entry_of(meta)

    def _delete_versions(self, file_ids: Sequence[str], key: str) -> None:
        for file_id in file_ids:
            try:
                self._delete_id(file_id, f"removal of the previous version of {key!r}")
            except StorageError as exc:  # published already; readers pick the newest; the sweep retries
                log.warning("Drive store: %s (left for the next upload or delete of %r)", exc, key)

    def _pin(self, key: str, file_id: str) -> None:
        """Record ``key``'s file ID in the store folder's properties, so a new machine finds it without a
        listing (which may not show a new file for a while)."""
        if key not in self.pinned_keys:
            return
        prop = pin_property(key)
        root = self._root_meta()
        if (root.get("properties") or {}).get(prop) == file_id:
            return
        try:
            meta = self._call(
                lambda: self._files.update(
                    fileId=self.folder_id,
                    body={"properties": {prop: file_id}},
                    fields=FOLDER_FIELDS,
                    **self._drive_params,
                ),
                f"pinning of {key!r} in the store folder",
            )
        except StorageError as exc:  # e.g. a shared drive's root, which has no properties: found by query later
            log.warning("Drive store: %s; %r is found by a listing instead (after Drive's lag)", exc, key)
            return
        self._root = meta
