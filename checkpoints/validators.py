"""Pluggable checkpoint validators: is this file a complete, usable checkpoint?

A validator looks at one local file and returns a :class:`Verdict` (a plain value, never raises for a bad
file). Format-specific validators live with their job kind (``jobs.darknet`` supplies one for darknet
weights) and conform structurally to :class:`Validator`. The generic ones here catch what every format
shares: empty files, HTML/JSON error pages saved under a checkpoint's name, and files that differ from the
size and sha256 recorded in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

HASH_CHUNK = 1 << 20
_SNIFF_BYTES = 4096
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<title")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str = ""  # why it is not valid (human sentence), "" when ok
    counter: int | None = None  # progress counter read from the file itself (e.g. darknet iteration), if any


@runtime_checkable
class Validator(Protocol):
    def validate(self, path: Path) -> Verdict: ...


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size_of(path: Path) -> int | Verdict:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Verdict(False, f"{path.name} does not exist")
    except OSError as exc:
        return Verdict(False, f"{path.name} cannot be read: {exc.strerror or exc}")
    return st.st_size


class NonEmptyValidator:
    """Rejects missing and zero-byte files (and, optionally, files below ``min_size`` bytes)."""

    def __init__(self, min_size: int = 1) -> None:
        self.min_size = max(1, min_size)

    def validate(self, path: Path) -> Verdict:
        size = _size_of(path)
        if isinstance(size, Verdict):
            return size
        if size == 0:
            return Verdict(False, f"{path.name} is empty (0 bytes), probably cut off before anything was written")
        if size < self.min_size:
            return Verdict(False, f"{path.name} is {size} bytes, smaller than the minimum {self.min_size}")
        return Verdict(True)


def looks_like_error_page(head: bytes) -> str | None:
    """If ``head`` (the first bytes of a file) is an HTML/XML page or a JSON error, say which; else None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if any(text.startswith(marker) for marker in _HTML_MARKERS) or (text.startswith(b"<!--") and b"<html" in text):
        return "an HTML page (a download or login error saved under the checkpoint's name)"
    if text.startswith(b"{"):
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            return None
        try:
            obj = json.loads(decoded)
        except ValueError:
            # Truncated sniff window: judge by the visible keys.
            return "a JSON error response" if '"error"' in decoded[:512] else None
        if isinstance(obj, dict) and ("error" in obj or "errors" in obj):
            return "a JSON error response"
    return None


class NotErrorPageValidator:
    """Rejects files that are really an HTML page or a JSON error body (e.g. a Drive quota or login page)."""

    def validate(self, path: Path) -> Verdict:
        try:
            with open(path, "rb") as fh:
                head = fh.read(_SNIFF_BYTES)
        except OSError as exc:
            return Verdict(False, f"{path.name} cannot be read: {exc.strerror or exc}")
        what = looks_like_error_page(head)
        if what:
            return Verdict(False, f"{path.name} is {what}, not a checkpoint")
        return Verdict(True)


class RecordValidator:
    """Checks a file against the size and sha256 recorded for it (e.g. in the store's manifest)."""

    def __init__(self, size: int, sha256: str | None = None) -> None:
        self.size = size
        self.sha256 = sha256

    def validate(self, path: Path) -> Verdict:
        size = _size_of(path)
        if isinstance(size, Verdict):
            return size
        if size != self.size:
            return Verdict(
                False, f"{path.name} is {size} bytes but the manifest records {self.size} (truncated or replaced)"
            )
        if self.sha256 is not None:
            try:
                actual = file_sha256(path)
            except OSError as exc:
                return Verdict(False, f"{path.name} cannot be read: {exc.strerror or exc}")
            if actual != self.sha256:
                return Verdict(
                    False, f"{path.name} has sha256 {actual[:12]}... but the manifest records {self.sha256[:12]}..."
                )
        return Verdict(True)


class AllOf:
    """All validators must pass; the first failure's verdict is returned. The counter is the first one reported."""

    def __init__(self, validators: Iterable[Validator]) -> None:
        self.validators = tuple(validators)

    def validate(self, path: Path) -> Verdict:
        counter: int | None = None
        for validator in self.validators:
            verdict = validator.validate(path)
            if not verdict.ok:
                return verdict
            if counter is None:
                counter = verdict.counter
        return Verdict(True, counter=counter)


def generic_validator(extra: Validator | None = None) -> Validator:
    """Non-empty and not an error page, then ``extra`` (a format check such as darknet weights) if given."""
    checks: list[Validator] = [NonEmptyValidator(), NotErrorPageValidator()]
    if extra is not None:
        checks.append(extra)
    return AllOf(checks)
