"""Moving bytes to and from Drive: chunked resumable uploads and ranged, verified downloads.

Uploads. Objects up to one chunk go in one ``uploadType=multipart`` request (``files.create``, or
``files.update`` to replace a file's content at the same ID); bigger ones use a resumable
session in chunks of ``chunk_size`` (a multiple of 256 KiB, as Drive requires). Each ``next_chunk()`` runs inside
our own retry loop and never with the library's ``num_retries``: the library's retry re-sends the same
already-consumed stream slice, i.e. an empty body under the old ``Content-Length``. For the same reason the media
object hands the library each chunk as ``bytes`` (``has_stream() -> False``), so a retry at any layer (httplib2
re-sends once on a stale connection) re-sends the complete chunk. After a failed chunk the library is in its
error state: the next ``next_chunk()`` first asks Drive how much it holds (``Content-Range: bytes */total``,
answered by 308 + ``Range``) and continues from there, so a dropped connection costs at most the chunk that was
in flight. A session Drive no longer knows (404 on a chunk: expired or lost) is restarted from the beginning,
at most ``SESSION_RESTARTS`` times.

Downloads. :class:`DriveReader` is a readable stream over ``alt=media`` requests with ``Range`` headers
(``MediaIoBaseDownload``), one chunk per request, each retried on its own; it hashes what passes through and, at
the end, raises :class:`StorageError` unless size and MD5 match Drive's metadata - before the caller renames its
temp file into place.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from googleapiclient.http import MediaIoBaseDownload, MediaIoBaseUpload

from checkpoints.drive_retry import DriveNotFound, DriveRetry, UploadCapWatch
from orchestrator.core.errors import StorageError
from orchestrator.core.logs import get_logger

CHUNK_UNIT = 256 * 1024
SESSION_RESTARTS = 2  # fresh sessions after Drive forgot one (404 on a chunk: "the upload must be restarted")
MIME = "application/octet-stream"

log = get_logger(__name__)


class _ChunkBytesUpload(MediaIoBaseUpload):
    """Media whose chunks reach the client library as bytes, so every retry re-sends the whole chunk."""

    def has_stream(self) -> bool:
        return False


def file_digest(fh: BinaryIO, block: int = 1 << 20) -> tuple[int, str]:
    """(size, md5 hex) of an open file, read from the start."""
    fh.seek(0)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := fh.read(block):
        md5.update(chunk)
        size += len(chunk)
    fh.seek(0)
    return size, md5.hexdigest()


def upload_file(
    files: Any,
    fh: BinaryIO,
    size: int,
    body: dict[str, Any],
    *,
    chunk_size: int,
    retry: DriveRetry,
    http: Callable[[], Any],
    params: dict[str, Any],
    what: str,
    file_id: str | None = None,
) -> dict[str, Any]:
    """Create a new Drive file with ``body`` metadata and the content of ``fh`` (or, with ``file_id``, replace
    that file's content: a new revision, atomic for readers); returns Drive's metadata.

    Every upload request - multipart or resumable - counts rate-limit refusals without progress toward the
    daily-cap rule (:class:`~checkpoints.drive_retry.UploadCapWatch`)."""

    def request_for(media: Any) -> Any:
        if file_id is None:
            return files.create(body=body, media_body=media, **params)
        return files.update(fileId=file_id, body=body, media_body=media, **params)

    watch = retry.new_cap_watch()
    if size <= chunk_size:
        request = request_for(_ChunkBytesUpload(fh, mimetype=MIME, resumable=False))
        result: dict[str, Any] = retry.call(lambda: request.execute(http=http()), what, cap_watch=watch)
        return result
    for _session in range(SESSION_RESTARTS + 1):
        request = request_for(_ChunkBytesUpload(fh, mimetype=MIME, chunksize=chunk_size, resumable=True))
        try:
            return _send_chunks(request, retry, http, what, watch)
        except DriveNotFound:
            if request.resumable_uri is None:
                raise  # the create itself was refused: the folder is missing
            log.warning("Drive %s: the upload session expired (404); starting the upload again", what)
    raise StorageError(f"Drive {what}: the upload session expired {SESSION_RESTARTS + 1} times; retry later")


def _send_chunks(
    request: Any, retry: DriveRetry, http: Callable[[], Any], what: str, watch: UploadCapWatch
) -> dict[str, Any]:
    """Drive one resumable session to its end, each step retried; returns the new file's metadata."""
    response = None
    while response is None:
        before = request.resumable_progress
        _status, response = retry.call(lambda: request.next_chunk(http=http()), what, cap_watch=watch)
        if response is not None or request.resumable_progress > before:
            watch.progressed()
    return dict(response)


class _ChunkSink:
    """Where MediaIoBaseDownload writes each chunk: kept by reference, not copied into a buffer."""

    def __init__(self, parts: list[bytes]) -> None:
        self._parts = parts

    def write(self, data: bytes) -> int:
        self._parts.append(data)
        return len(data)


class DriveReader(io.RawIOBase):
    """Read-only stream of one Drive file's content, fetched in ranged chunks and verified at the end."""

    def __init__(
        self,
        request: Any,
        *,
        expected_size: int,
        expected_md5: str | None,
        chunk_size: int,
        retry: DriveRetry,
        what: str,
    ) -> None:
        super().__init__()
        self._received: list[bytes] = []
        self._pending = memoryview(b"")
        self._download = MediaIoBaseDownload(_ChunkSink(self._received), request, chunksize=chunk_size)
        self._retry = retry
        self._what = what
        self._expected = (expected_size, expected_md5)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self._done = expected_size == 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._pending and not self._done:
            _status, self._done = self._retry.call(self._download.next_chunk, self._what)
            self._pending = memoryview(b"".join(self._received))  # one part: no copy
            self._received.clear()
            if not self._pending and not self._done:
                raise StorageError(f"Drive {self._what}: Drive sent an empty chunk before the end of the file")
        if not self._pending:
            self._verify()
            return 0
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._md5.update(self._pending[:n])
        self._size += n
        self._pending = self._pending[n:]  # a view: no copy of the rest of the chunk
        return n

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(1 << 20):
            parts.append(chunk)
        return b"".join(parts)

    def _verify(self) -> None:
        size, md5 = self._expected
        if self._size != size or (md5 is not None and self._md5.hexdigest() != md5):
            raise StorageError(
                f"Drive {self._what}: received {self._size} bytes (md5 {self._md5.hexdigest()}) but Drive lists "
                f"{size} bytes (md5 {md5}); the download was corrupted, retry it"
            )


def open_source(src: Path) -> BinaryIO:
    """Open a local file to upload, converting the failure into StorageError."""
    try:
        return open(src, "rb")
    except OSError as exc:
        raise StorageError(f"cannot upload {src}: {exc.strerror or exc}") from exc
