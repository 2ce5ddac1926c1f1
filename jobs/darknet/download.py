"""Streamed download of pretrained weights: HTTP Range resume, bounded retries, size and sha256 checks.

The partial file (``<dest>.part``) lives beside the destination - in the durable store - so a download cut
by a disconnect continues in the next session instead of starting over. The finished file appears under its
name only after the size (Content-Length / Content-Range) and the optional sha256 match, and after it was
checked not to be an HTML page (Drive and GitHub answer quota and login problems with HTML and status 200).
"""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from checkpoints.validators import file_sha256, looks_like_error_page
from orchestrator.core.errors import StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Retryable(Exception):
    pass


def _fetch_once(url: str, part: Path, timeout: float, progress: Callable[[int, int | None], None] | None) -> int | None:
    """Append the rest of ``url`` to ``part``; returns the total size if the server said it."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "orchestrator", **({"Range": f"bytes={have}-"} if have else {})}
    request = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return have
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code}") from exc
        raise StorageError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise _Retryable(str(exc)) from exc
    with resp:
        total: int | None = None
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise StorageError(f"download of {url}: the server answered a range we did not ask for")
            total = int(match.group(3)) if match.group(3) != "*" else None
            mode = "ab"
        else:  # 200: the server ignores Range; start over
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            mode = "wb"
            have = 0
        try:
            with open(part, mode) as out:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
                    have += len(chunk)
                    if progress:
                        progress(have, total)
                out.flush()
                os.fsync(out.fileno())
        except (OSError, TimeoutError, ConnectionError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None and exc.errno not in (104, 110, 32):
                raise StorageError(f"cannot write {part}: {exc}") from exc
            raise _Retryable(str(exc)) from exc
    if total is not None and have < total:
        raise _Retryable(f"connection closed at {have} of {total} bytes")
    return total


def download(url: str, dest: Path, sha256: str | None = None, attempts: int = 6, timeout: float = 60.0,
             progress: Callable[[int, int | None], None] | None = None, backoff: float = 1.0) -> Path:
    """Download ``url`` to ``dest`` (resuming a previous ``.part``); StorageError when it cannot."""
    if not url.startswith(("http://", "https://")):
        raise StorageError(f"pretrained URL {url!r} must start with http:// or https://")
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total: int | None = None
    try:
        for attempt in Retrying(stop=stop_after_attempt(attempts), reraise=False,
                                wait=wait_exponential(multiplier=backoff, max=60),
                                retry=retry_if_exception_type(_Retryable)):
            with attempt:
                total = _fetch_once(url, part, timeout, progress)
    except RetryError as exc:
        kept = part.stat().st_size if part.exists() else 0
        cause = exc.last_attempt.exception()
        if kept == 0:
            raise StorageError(
                f"cannot download pretrained weights {url} ({cause}, {attempts} attempts): check the URL and the "
                "network, or download the file yourself and give its path as pretrained:; "
                "run the same command again to retry"
            ) from exc
        raise StorageError(
            f"download of {url} failed after {attempts} attempts ({cause}); "
            f"{kept} bytes kept in {part}, a re-run resumes from there"
        ) from exc
    size = part.stat().st_size
    if total is not None and size != total:
        raise StorageError(f"download of {url}: got {size} bytes, the server announced {total}")
    with open(part, "rb") as fh:
        page = looks_like_error_page(fh.read(4096))
    if page:
        part.unlink()
        raise StorageError(f"download of {url} returned {page}, not weights; check the URL and sharing settings")
    if sha256 is not None:
        actual = file_sha256(part)
        if actual.lower() != sha256.lower():
            part.unlink()
            raise StorageError(f"download of {url}: sha256 {actual} does not match the expected {sha256}; deleted")
    os.replace(part, dest)
    log.info("downloaded %s (%d bytes) to %s", url, size, dest)
    return dest
