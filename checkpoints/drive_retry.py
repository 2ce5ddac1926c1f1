"""How the Drive store reacts to failures: classify, back off (tenacity), or convert to our error tree.

Retried with bounded, truncated exponential backoff and jitter (:class:`DriveRetry`):

* HTTP 429, 408 and every 5xx;
* 403 with reason ``rateLimitExceeded`` or ``userRateLimitExceeded`` (Drive's per-user/per-project rate limits);
* transport failures: reset or dropped connections, timeouts, TLS errors, DNS hiccups.

Not retried:

* the **daily upload cap** (~750 GB per user per day). Drive reports it as the same 403
  ``userRateLimitExceeded`` as an ordinary rate limit, so the rule is: during an upload, ``cap_strikes``
  consecutive rate-limit refusals with no upload progress in between (by default 6, i.e. about a minute of
  backoff; ordinary rate limits clear within seconds) - or any refusal whose reason is ``dailyLimitExceeded``
  / ``quotaExceeded`` or whose message mentions a daily limit - raise :class:`QuotaExceededError`;
* 403 ``storageQuotaExceeded``: the Drive is full or, for a service account, has no storage at all -
  :class:`QuotaExceededError` telling the user to use a shared drive;
* 404 -> :class:`DriveNotFound` (callers decide: absent key, or an object replaced under a reader);
* everything else (400, 401, other 403s) -> :class:`StorageError` naming the operation.
"""

from __future__ import annotations

import errno
import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httplib2
import tenacity
from googleapiclient.errors import HttpError

from orchestrator.core.errors import QuotaExceededError, StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
DAILY_QUOTA_REASONS = frozenset({"dailyLimitExceeded", "quotaExceeded", "dailyLimitExceededUnreg"})
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.timeout,
    ssl.SSLError,
    http.client.HTTPException,
    httplib2.HttpLib2Error,
)
_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNRESET, errno.ECONNABORTED, errno.ECONNREFUSED, errno.EPIPE, errno.ETIMEDOUT, errno.ENETUNREACH}
)


class DriveNotFound(StorageError):
    """Drive answered 404 for a file ID (deleted, or not visible to these credentials)."""


def error_details(exc: HttpError) -> tuple[int, str, str]:
    """(status, first reason, message) from Drive's JSON error body; reason/message "" when absent."""
    status = int(exc.resp.status)
    try:
        error = json.loads(exc.content.decode("utf-8"))["error"]
        errors = error.get("errors") or [{}]
        return status, str(errors[0].get("reason", "")), str(error.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        return status, "", ""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, HttpError):
        status, reason, _ = error_details(exc)
        return status in (408, 429) or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS)
    if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError, socket.timeout)):
        return exc.errno is not None and exc.errno in _TRANSIENT_ERRNOS
    return isinstance(exc, TRANSPORT_ERRORS)


class UploadCapWatch:
    """Counts consecutive rate-limit refusals during one upload; progress resets the count."""

    def __init__(self, strikes: int) -> None:
        self.strikes = strikes
        self.count = 0

    def progressed(self) -> None:
        self.count = 0

    def refused(self) -> bool:
        """Record one rate-limit refusal; True once it looks like the daily cap."""
        self.count += 1
        return self.count >= self.strikes


@dataclass(frozen=True)
class DriveRetry:
    """Bounded truncated exponential backoff for one Drive request at a time.

    ``attempts`` bounds each request (the first try included); waits grow from ``initial`` doubling up to
    ``maximum`` seconds plus up to ``jitter`` seconds of random jitter. Tests pass tiny values.
    """

    attempts: int = 8
    initial: float = 1.0
    maximum: float = 32.0
    jitter: float = 1.0
    cap_strikes: int = 4
    sleep: Callable[[float], None] = time.sleep

    def new_cap_watch(self) -> UploadCapWatch:
        return UploadCapWatch(self.cap_strikes)

    def call(self, fn: Callable[[], T], what: str, cap_watch: UploadCapWatch | None = None) -> T:
        """Run ``fn`` with retries; convert what escapes into our error tree (``what`` names the operation)."""

        def attempt() -> T:
            try:
                return fn()
            except HttpError as exc:
                status, reason, message = error_details(exc)
                if status == 403 and (reason in DAILY_QUOTA_REASONS or "daily" in message.lower()):
                    raise _daily_cap(what, reason, message) from exc
                if cap_watch is not None and status == 403 and reason in RATE_LIMIT_REASONS and cap_watch.refused():
                    raise _daily_cap(what, reason, message, strikes=cap_watch.count) from exc
                raise

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential_jitter(multiplier=self.initial, max=self.maximum, jitter=self.jitter),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda state: log.warning(
                "Drive %s failed (%s), retry %d of %d",
                what,
                _describe(state.outcome.exception() if state.outcome else None),
                state.attempt_number,
                self.attempts - 1,
            ),
        )
        try:
            return retrying(attempt)
        except HttpError as exc:
            raise convert_http_error(exc, what) from exc
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(
                f"Drive {what} failed: {_describe(exc)} (network); check the connection and retry"
            ) from exc
        except TRANSPORT_ERRORS as exc:
            raise StorageError(
                f"Drive {what} failed: {_describe(exc)} (network); check the connection and retry"
            ) from exc


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, HttpError):
        status, reason, message = error_details(exc)
        return f"HTTP {status} {reason or ''} {message}".strip()
    return f"{type(exc).__name__}: {exc}"


def _daily_cap(what: str, reason: str, message: str, strikes: int = 0) -> QuotaExceededError:
    why = f"refused {strikes} times in a row without progress" if strikes else "reports a daily limit"
    return QuotaExceededError(
        f"Drive {what}: Drive {why} ({reason}: {message}). This looks like Drive's daily upload cap "
        "(about 750 GB per user per 24 h); retrying now will not help. Uploads resume after the cap resets "
        "(up to 24 h); the local checkpoint is kept."
    )


def convert_http_error(exc: HttpError, what: str) -> StorageError:
    status, reason, message = error_details(exc)
    if status == 404:
        return DriveNotFound(f"Drive {what}: not found ({message or 'HTTP 404'})")
    if status == 403 and reason == "storageQuotaExceeded":
        return QuotaExceededError(
            f"Drive {what}: Drive has no storage quota left for this account ({message}). A service account has "
            "no storage of its own: put the store folder in a shared drive and set `shared_drive: true` in the "
            "store spec; otherwise free space in the Drive that owns the folder."
        )
    if status == 403 and reason in RATE_LIMIT_REASONS:
        return StorageError(f"Drive {what}: still rate limited after retries ({message}); try again later")
    if status == 403 and reason == "insufficientFilePermissions":
        return StorageError(
            f"Drive {what}: permission denied ({message}). In a shared drive, deleting files needs the Manager "
            "role (Content manager may add and edit but not delete): give these credentials Manager on the "
            "shared drive"
        )
    if status in (401, 403):
        return StorageError(
            f"Drive {what}: permission denied (HTTP {status} {reason}: {message}); check that the credentials can "
            "write to the store folder (share it with the service account's e-mail) and that the token is valid"
        )
    return StorageError(f"Drive {what} failed: HTTP {status} {reason} {message}".rstrip())
