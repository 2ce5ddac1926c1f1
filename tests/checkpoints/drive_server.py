"""A loopback Google Drive v3 server for tests: the real client library talks to it over real HTTP.

It speaks the subset of Drive v3 that :class:`checkpoints.drive_store.DriveStore` uses, the way Drive answers
it: ``files.list`` with ``q``/``fields``/paging, ``files.get`` (metadata, and ``alt=media`` with ``Range`` ->
206), ``files.create``/``files.update`` with ``uploadType=multipart`` and ``uploadType=resumable`` (``Location``
with ``upload_id``; chunk ``PUT`` with ``Content-Range`` -> 308 + ``Range`` until done; status query
``bytes */total``), metadata ``PATCH``, ``files.delete`` (permanent, 204) and folders.

Tests steer it through plain attributes and methods:

* :meth:`DriveFake.inject` queues faults (429, 503/5xx, 403 rate limits, ``storageQuotaExceeded``, dropped
  connections part-way through a request body), each with Drive's real JSON error body;
* ``daily_cap_after_bytes`` models the ~750 GB/day upload cap: once that many upload bytes were received,
  every upload request fails with 403 ``userRateLimitExceeded`` forever;
* ``list_lag`` hides just-created files from ``files.list`` for that many seconds (``files.get`` sees them) and
  keeps just-deleted ones in it (``files.get`` answers 404 at once);
* ``bytes_received`` / ``chunk_bytes_received`` count upload body bytes, so tests assert what was re-sent;
* shared drives as Drive runs them: a folder made with ``add_folder(shared_drive=True)`` is in a shared drive
  (its files carry ``driveId``); requests need ``supportsAllDrives``, listings need ``corpora=drive`` with that
  ``driveId`` (``corpora=allDrives`` answers ``incompleteSearch: true`` and may miss files), and
  ``files.delete`` needs the organizer ("Manager") role: ``shared_drive_role`` sets the caller's role, and
  ``capabilities.canDelete`` / ``canDeleteChildren`` say what it allows;
* ``incomplete_searches``: that many next listings answer ``incompleteSearch: true`` and leave one file out;
* ``required_token``: when set, a request without ``Authorization: Bearer <token>`` gets 401 ``authError``;
* every error answer carries Drive's JSON error body (``error.errors[0].reason``);
* ``requests`` logs every request as (operation, method), which the benchmarks count; ``latency`` delays
  every answer (a benchmark's stand-in for Drive's round trip).
"""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.checkpoints.drive_protocol import (
    ERRORS,
    FOLDER_MIME,
    UPLOAD_GRANULARITY,
    FakeFile,
    Fault,
    UploadSession,
    content_range,
    error_body,
    matches_query,
    parse_query,
    select_fields,
    split_multipart,
)


class DriveFake:
    """State and behaviour of the fake Drive; the HTTP handler below only parses and dispatches."""

    def __init__(self, *, list_lag: float = 0.0) -> None:
        self.files: dict[str, FakeFile] = {}
        self.sessions: dict[str, UploadSession] = {}
        self.faults: deque[Fault] = deque()
        self.list_lag = list_lag
        self.ghosts: dict[str, tuple[FakeFile, float]] = {}  # deleted, still listed until the given time
        self.daily_cap_after_bytes: int | None = None
        self.service_account_without_quota = False  # My Drive uploads fail with storageQuotaExceeded
        self.shared_drive_folders: set[str] = set()  # folders that need supportsAllDrives=true
        self.shared_drive_role = "organizer"  # the caller's role on shared drives: organizer/fileOrganizer/writer
        self.incomplete_searches = 0  # that many next listings are incomplete (one file left out)
        self.required_token: str | None = None
        self.latency = 0.0  # seconds added to every request (benchmarks: Drive's round trip is ~0.1 s)
        self.bytes_received = 0  # every upload body byte (multipart bodies and resumable chunks)
        self.chunk_bytes_received = 0  # resumable chunk bytes only
        self.short_bodies = 0  # requests whose body stopped short of Content-Length
        self.body_timeout = 2.0  # seconds to wait for a request body before counting it short
        self.corrupt_media = False  # flip one byte in every alt=media answer (a proxy mangling downloads)
        self.status_queries = 0  # resumable "how much do you have?" PUTs (Content-Range: bytes */total)
        self.requests: list[tuple[str, str]] = []  # (operation, method) in arrival order
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> DriveFake:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="drive-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def root_url(self) -> str:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    # -- test controls ---------------------------------------------------------------------------------------

    def inject(self, kind: str, on: str = "any", times: int = 1, drop_after: int = 0, skip: int = 0) -> None:
        """Queue ``times`` faults of ``kind`` (an ERRORS key or ``"drop"``) for the next ``on`` operations,
        after letting ``skip`` matching operations through. ``on`` is an operation name (see
        :meth:`operation_of`), ``"upload"`` (any upload request) or ``"any"``."""
        if kind not in ("drop", "stale", "lost_reply", "session_expired") and kind not in ERRORS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self.lock:
            self.faults.extend(Fault(kind, on, drop_after, skip if i == 0 else 0) for i in range(times))

    def add_folder(self, name: str = "root folder", parent: str = "root", *, shared_drive: bool = False) -> str:
        with self.lock:
            folder = FakeFile(id=self._new_id(), name=name, mime_type=FOLDER_MIME, parents=[parent])
            self.files[folder.id] = folder
            if shared_drive:
                self.shared_drive_folders.add(folder.id)
                folder.drive_id = "0A" + self._new_id()[2:]
            self.set_shared_drive_role(self.shared_drive_role)
            return folder.id

    def set_shared_drive_role(self, role: str) -> None:
        """The caller's role on every shared drive: ``organizer`` (Manager) may delete, others may not."""
        if role not in ("organizer", "fileOrganizer", "writer"):
            raise ValueError(f"unknown shared drive role {role!r}")
        with self.lock:
            self.shared_drive_role = role
            for file in self.files.values():
                file.can_delete = file.drive_id is None or role == "organizer"

    def objects(self) -> list[FakeFile]:
        """Every non-folder file (the store's objects, wherever their folders are)."""
        with self.lock:
            return [f for f in self.files.values() if f.mime_type != FOLDER_MIME]

    def path_of(self, file: FakeFile) -> str:
        """``folder/sub/name`` of a file, as a person browsing Drive's web page sees it."""
        with self.lock:
            names = [file.name]
            parent = file.parents[0] if file.parents else "root"
            while parent in self.files:
                names.append(self.files[parent].name)
                parent = self.files[parent].parents[0] if self.files[parent].parents else "root"
            return "/".join(reversed(names))

    def children(self, folder_id: str) -> list[FakeFile]:
        with self.lock:
            return [f for f in self.files.values() if folder_id in f.parents]

    def count(self, operation: str) -> int:
        with self.lock:
            return sum(1 for op, _ in self.requests if op == operation)

    # -- dispatch helpers ------------------------------------------------------------------------------------

    @staticmethod
    def operation_of(method: str, path: str, query: dict[str, str]) -> str:
        """Name the operation of a request: list/get/media/create/update/delete/upload_start/chunk."""
        if path.startswith("/upload/"):
            if method == "PUT":
                return "chunk"
            return "upload_start" if query.get("uploadType") == "resumable" else "upload_multipart"
        if method == "GET":
            if path.rstrip("/").endswith("/files"):
                return "list"
            return "media" if query.get("alt") == "media" else "get"
        return {"POST": "create", "PATCH": "update", "DELETE": "delete"}.get(method, "unknown")

    def take_fault(self, operation: str) -> Fault | None:
        with self.lock:
            self.requests.append((operation, ""))
            for i, fault in enumerate(self.faults):
                if fault.on in ("any", operation) or (
                    fault.on == "upload" and operation.startswith(("upload", "chunk"))
                ):
                    if fault.skip:
                        fault.skip -= 1
                        return None
                    del self.faults[i]
                    return fault
            return None

    def cap_reached(self) -> bool:
        with self.lock:
            return self.daily_cap_after_bytes is not None and self.bytes_received >= self.daily_cap_after_bytes

    def _new_id(self) -> str:
        return "1" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=").replace("-", "x")

    def visible(self, file: FakeFile, query: dict[str, str]) -> bool:
        """Shared-drive items exist for a request only with supportsAllDrives=true (as in Drive)."""
        return file.drive_id is None or query.get("supportsAllDrives") == "true"

    def check_parent(
        self, parents: list[str], query: dict[str, str], mime_type: str | None = None
    ) -> tuple[int, bytes] | None:
        """Drive's answers for a bad parent: 404 (unknown, or shared drive without supportsAllDrives); a file
        (not a folder) outside shared drives for a service account without storage: storageQuotaExceeded."""
        for parent in parents:
            if parent == "root":
                continue
            if parent not in self.files or not self.visible(self.files[parent], query):
                return error_body("notFound", f"File not found: {parent}.")
        in_shared = any(p in self.files and self.files[p].drive_id for p in parents)
        if self.service_account_without_quota and not in_shared and mime_type != FOLDER_MIME:
            return error_body("storageQuotaExceeded")
        return None

    # -- operations (called with the lock held) --------------------------------------------------------------

    def create_file(self, metadata: dict[str, Any], content: bytes) -> FakeFile:
        now = time.time()
        parents = list(metadata.get("parents") or ["root"])
        drive_id = next((self.files[p].drive_id for p in parents if p in self.files), None)
        new = FakeFile(
            id=self._new_id(),
            name=metadata.get("name", "Untitled"),
            mime_type=metadata.get("mimeType") or "application/octet-stream",
            parents=parents,
            content=bytes(content),
            app_properties={k: v for k, v in (metadata.get("appProperties") or {}).items() if v is not None},
            properties={k: v for k, v in (metadata.get("properties") or {}).items() if v is not None},
            created=now,
            modified=now,
            listable_after=now + self.list_lag,
            drive_id=drive_id,
            can_delete=drive_id is None or self.shared_drive_role == "organizer",
        )
        self.files[new.id] = new
        return new

    def update_file(self, file: FakeFile, metadata: dict[str, Any], content: bytes | None) -> None:
        if "name" in metadata:
            file.name = metadata["name"]
        if "trashed" in metadata:
            file.trashed = bool(metadata["trashed"])
        for name, props in (("appProperties", file.app_properties), ("properties", file.properties)):
            for key, value in (metadata.get(name) or {}).items():
                if value is None:
                    props.pop(key, None)
                else:
                    props[key] = str(value)
        if content is not None:
            file.content = bytes(content)
        file.modified = time.time()

    def list_files(self, query: dict[str, str]) -> dict[str, Any]:
        terms = parse_query(query.get("q", ""))
        now = time.time()
        listed = [f for f in self.files.values() if now >= f.listable_after]
        listed += [f for f, until in self.ghosts.values() if now < until and now >= f.listable_after]
        with_drives = query.get("includeItemsFromAllDrives") == "true" and query.get("supportsAllDrives") == "true"
        corpora = query.get("corpora", "user")
        if corpora == "drive" and not (with_drives and query.get("driveId")):
            raise ValueError("corpora=drive needs driveId, supportsAllDrives and includeItemsFromAllDrives")

        def in_corpus(f: FakeFile) -> bool:
            if f.drive_id is None:
                return corpora in ("user", "allDrives")
            if not with_drives:
                return False
            return corpora == "allDrives" or (corpora == "drive" and f.drive_id == query.get("driveId"))

        hits = [f for f in listed if in_corpus(f) and matches_query(terms, f.resource())]
        incomplete = corpora == "allDrives" and any(f.drive_id for f in hits)
        if self.incomplete_searches > 0:
            self.incomplete_searches -= 1
            incomplete = True
        if incomplete and hits:
            hits = hits[:-1]  # an incomplete search really misses something
        size = max(1, min(int(query.get("pageSize", "100")), 1000))
        start = int(base64.urlsafe_b64decode(query["pageToken"]).decode()) if query.get("pageToken") else 0
        page = hits[start : start + size]
        result: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": incomplete}
        result["files"] = [f.resource() for f in page]
        if start + size < len(hits):
            result["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return result

    def finish_upload(self, session: UploadSession) -> dict[str, Any]:
        if session.file_id is None:
            new = self.create_file(session.metadata, bytes(session.data))
            return new.resource()
        file = self.files[session.file_id]
        self.update_file(file, session.metadata, bytes(session.data))
        return file.resource()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: DriveFake

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body leave in two writes: without this, Nagle + delayed ACK cost 40 ms a request
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the socket was reset on purpose (dropped-connection fault)

    # -- plumbing --------------------------------------------------------------------------------------------

    def _reply(self, code: int, payload: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None):
        body = raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if payload is not None and raw is None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code_body: tuple[int, bytes]) -> None:
        code, body = code_body
        self._reply(code, headers={"Content-Type": "application/json; charset=UTF-8"}, raw=body)

    def _drop(self, length: int, after: int) -> None:
        """Read part of the body, then reset the connection (RST) without answering."""
        got = self.rfile.read(min(after, length)) if length else b""
        self._count_upload(len(got))
        self._partial = got
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _count_upload(self, n: int) -> None:
        if self.path.startswith("/upload/"):
            with self.fake.lock:
                self.fake.bytes_received += n
                if self.command == "PUT":
                    self.fake.chunk_bytes_received += n

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        operation = self.fake.operation_of(self.command, url.path, query)
        if operation == "chunk" and self.headers.get("Content-Range", "").startswith("bytes */"):
            with self.fake.lock:
                self.fake.status_queries += 1
        fault = self.fake.take_fault(operation)
        if self.fake.latency:
            time.sleep(self.fake.latency)
        token = self.fake.required_token
        if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
            self._read_body(length)
            self._error(error_body("authError"))
            return
        if fault is not None and fault.kind == "drop":
            self._partial = b""
            self._drop(length, fault.drop_after)
            if operation == "chunk":
                self._commit_partial(query, self._partial)
            return
        body = self._read_body(length)
        if body is None:
            return
        if fault is not None and fault.kind == "stale":
            # answer normally, then close the kept-alive connection without saying so: the client's next
            # request on it finds a dead socket (what idle timeouts in proxies and load balancers do)
            self.close_connection = True
            fault = None
        if fault is not None and fault.kind == "session_expired":
            with self.fake.lock:
                self.fake.sessions.pop(query.get("upload_id", ""), None)
            fault = None  # the chunk route answers 404 for the unknown session, as Drive does
        if fault is not None and fault.kind == "lost_reply":
            real_wfile, self.wfile = self.wfile, io.BytesIO()
            with self.fake.lock:
                self._dispatch(operation, url.path, query, body)
            self.wfile = real_wfile
            self._drop(0, 0)
            return
        if fault is not None:
            self._error(error_body(fault.kind))
            return
        if operation in ("upload_start", "upload_multipart", "chunk") and self.fake.cap_reached():
            self._error(error_body("userRateLimitExceeded", "User rate limit exceeded."))
            return
        with self.fake.lock:
            self._dispatch(operation, url.path, query, body)

    def _read_body(self, length: int) -> bytes | None:
        """The request body; None (connection closed, ``short_bodies`` counted) if it never arrives whole -
        the symptom of a client re-sending a consumed stream under the old ``Content-Length``."""
        self.connection.settimeout(self.fake.body_timeout)
        try:
            body = self.rfile.read(length) if length else b""
        except OSError:
            body = b""
        finally:
            try:
                self.connection.settimeout(None)
            except OSError:
                pass
        self._count_upload(len(body))
        if len(body) < length:
            with self.fake.lock:
                self.fake.short_bodies += 1
            self.close_connection = True
            return None
        return body

    def _commit_partial(self, query: dict[str, str], got: bytes) -> None:
        """Drive keeps what it received of a broken chunk, in whole 256 KiB units."""
        start = content_range(self.headers.get("Content-Range", ""))[0]
        with self.fake.lock:
            session = self.fake.sessions.get(query.get("upload_id", ""))
            if session is None or start is None or start > len(session.data):
                return
            keep = (start + len(got)) // UPLOAD_GRANULARITY * UPLOAD_GRANULARITY
            if keep > len(session.data):
                session.data.extend(got[len(session.data) - start : keep - start])

    # -- routes ----------------------------------------------------------------------------------------------

    def _dispatch(self, operation: str, path: str, query: dict[str, str], body: bytes) -> None:
        fake = self.fake
        parts = path.rstrip("/").split("/")
        file_id = parts[-1] if parts[-1] != "files" else None
        fields = query.get("fields")
        if operation == "list":
            try:
                result = fake.list_files(query)
            except ValueError as exc:
                self._error(error_body("invalid", f"Invalid Value: {exc}"))
                return
            self._reply(200, select_fields(result, fields, listing=True))
            return
        if operation == "chunk":
            self._chunk(query, body)
            return
        if file_id is not None and (file_id not in fake.files or not fake.visible(fake.files[file_id], query)):
            self._error(error_body("notFound", f"File not found: {file_id}."))
            return
        if operation == "get":
            self._reply(200, select_fields(fake.files[file_id].resource(), fields))
        elif operation == "media":
            self._media(fake.files[file_id])
        elif operation == "delete":
            if not fake.files[file_id].can_delete:
                self._error(error_body("insufficientFilePermissions"))
                return
            gone = fake.files.pop(file_id)
            if fake.list_lag:
                fake.ghosts[file_id] = (gone, time.time() + fake.list_lag)
            self._reply(204)
        elif operation in ("create", "update"):
            metadata = json.loads(body or b"{}")
            if operation == "create":
                bad = fake.check_parent(metadata.get("parents") or ["root"], query, metadata.get("mimeType"))
                if bad:
                    self._error(bad)
                    return
                res = fake.create_file(metadata, b"").resource()
            else:
                fake.update_file(fake.files[file_id], metadata, None)
                res = fake.files[file_id].resource()
            self._reply(200, select_fields(res, fields))
        elif operation == "upload_multipart":
            metadata, media = split_multipart(body, self.headers.get("Content-Type", ""))
            if file_id is None:
                bad = fake.check_parent(metadata.get("parents") or ["root"], query)
                if bad:
                    self._error(bad)
                    return
                res = fake.create_file(metadata, media).resource()
            else:
                fake.update_file(fake.files[file_id], metadata, media)
                res = fake.files[file_id].resource()
            self._reply(200, select_fields(res, fields))
        elif operation == "upload_start":
            metadata = json.loads(body or b"{}")
            if file_id is None:
                bad = fake.check_parent(metadata.get("parents") or ["root"], query)
                if bad:
                    self._error(bad)
                    return
            total = self.headers.get("X-Upload-Content-Length")
            upload_id = uuid.uuid4().hex
            fake.sessions[upload_id] = UploadSession(metadata, query, int(total) if total else None, file_id)
            location = f"{fake.root_url}{path.lstrip('/')}?uploadType=resumable&upload_id={upload_id}"
            self._reply(200, headers={"Location": location}, raw=b"")
        else:
            self._error(error_body("badRequest", f"unsupported {self.command} {path}"))

    def _chunk(self, query: dict[str, str], body: bytes) -> None:
        session = self.fake.sessions.get(query.get("upload_id", ""))
        if session is None:
            self._error(error_body("notFound", "No such upload session."))
            return
        start, end, total = content_range(self.headers.get("Content-Range", ""))
        if total is not None:
            session.total = total
        if session.result is None and start is not None:
            if start > len(session.data) or end is None or end - start + 1 != len(body):
                self._error(error_body("badRequest", "Invalid Content-Range."))
                return
            final = session.total is not None and end + 1 == session.total
            if not final and len(body) % UPLOAD_GRANULARITY:
                self._error(error_body("badRequest", "Chunk size must be a multiple of 256 KiB."))
                return
            session.data.extend(body[len(session.data) - start :])
        elif session.result is None and not body and session.total == 0:
            pass  # the client library sends an empty file as one PUT without Content-Range
        if session.result is None and session.total is not None and len(session.data) >= session.total:
            session.result = self.fake.finish_upload(session)
        if session.result is not None:
            self._reply(200, select_fields(session.result, session.query.get("fields")))
            return
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        self._reply(308, headers=headers, raw=b"")

    def _media(self, file: FakeFile) -> None:
        if file.mime_type == FOLDER_MIME:
            self._error(error_body("fileNotDownloadable"))
            return
        data, total = file.content, len(file.content)
        byte_range = self.headers.get("Range")
        if byte_range is None:
            self._reply(200, raw=data, headers={"Content-Type": file.mime_type})
            return
        first, _, last = byte_range.removeprefix("bytes=").partition("-")
        lo, hi = int(first), min(int(last) if last else total - 1, total - 1)
        if lo >= total:
            code, err = error_body("requestedRangeNotSatisfiable")
            headers = {"Content-Range": f"bytes */{total}", "Content-Type": "application/json; charset=UTF-8"}
            self._reply(code, headers=headers, raw=err)
            return
        headers = {"Content-Range": f"bytes {lo}-{hi}/{total}", "Content-Type": file.mime_type}
        part = data[lo : hi + 1]
        if self.fake.corrupt_media:
            part = bytes([part[0] ^ 0xFF]) + part[1:]
        self._reply(206, raw=part, headers=headers)


def loopback_store(fake: DriveFake, folder_id: str, **kwargs: Any) -> Any:
    """A DriveStore wired to ``fake`` the way tests need it: real client library, offline discovery doc,
    one plain httplib2 client per thread, and (unless given) a tiny backoff so faults cost milliseconds."""
    from checkpoints.drive_auth import build_drive_service, plain_http_factory
    from checkpoints.drive_retry import DriveRetry
    from checkpoints.drive_store import DriveStore

    factory = plain_http_factory()
    kwargs.setdefault("retry", DriveRetry(attempts=6, initial=0.001, maximum=0.01, jitter=0.001, cap_strikes=4))
    kwargs.setdefault("chunk_size", 256 * 1024)
    return DriveStore(build_drive_service(factory, root_url=fake.root_url), folder_id, http_factory=factory, **kwargs)
