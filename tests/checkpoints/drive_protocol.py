"""Drive v3 wire formats for the loopback Drive server: search queries (``q``), partial responses (``fields``),
error bodies, ``multipart/related`` uploads, ``Content-Range`` headers; and the fake's resource model (files,
upload sessions, queued faults).

Supported query terms, joined by ``and`` (what a store needs; anything else is rejected with a 400 as Drive
rejects malformed queries)::

    '<id>' in parents        name = '...'        name contains '...'       trashed = false | true
    mimeType = '...'         mimeType != '...'   appProperties has { key='k' and value='v' }
    properties has { key='k' and value='v' }

String literals use single quotes with ``\\'`` and ``\\\\`` escapes, as Drive documents.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

FOLDER_MIME = "application/vnd.google-apps.folder"
UPLOAD_GRANULARITY = 256 * 1024  # Drive wants non-final resumable chunks in multiples of 256 KiB

_STRING = r"'((?:[^'\\]|\\.)*)'"
_TERMS = [
    ("in_parents", re.compile(_STRING + r"\s+in\s+parents")),
    (
        "property",
        re.compile(
            r"(appProperties|properties)\s+has\s+\{\s*key\s*=\s*"
            + _STRING
            + r"\s+and\s+value\s*=\s*"
            + _STRING
            + r"\s*\}"
        ),
    ),
    ("name_eq", re.compile(r"name\s*=\s*" + _STRING)),
    ("name_contains", re.compile(r"name\s+contains\s+" + _STRING)),
    ("trashed", re.compile(r"trashed\s*=\s*(true|false)")),
    ("mime_eq", re.compile(r"mimeType\s*=\s*" + _STRING)),
    ("mime_ne", re.compile(r"mimeType\s*!=\s*" + _STRING)),
]
_AND = re.compile(r"\s+and\s+")


@dataclass(frozen=True)
class Term:
    kind: str
    args: tuple[str, ...]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_query(q: str) -> list[Term]:
    """Parse ``q`` into terms; raise ValueError on anything outside the supported grammar."""
    terms: list[Term] = []
    pos, text = 0, q.strip()
    while pos < len(text):
        for kind, pattern in _TERMS:
            match = pattern.match(text, pos)
            if match:
                terms.append(Term(kind, tuple(_unescape(g) for g in match.groups())))
                pos = match.end()
                break
        else:
            raise ValueError(f"cannot parse query at {text[pos : pos + 40]!r}")
        joiner = _AND.match(text, pos)
        if joiner:
            pos = joiner.end()
        elif pos < len(text):
            raise ValueError(f"expected 'and' at {text[pos : pos + 40]!r}")
    return terms


def matches_query(terms: list[Term], resource: dict[str, Any]) -> bool:
    for term in terms:
        if term.kind == "in_parents" and term.args[0] not in resource.get("parents", []):
            return False
        if term.kind == "property" and (resource.get(term.args[0]) or {}).get(term.args[1]) != term.args[2]:
            return False
        if term.kind == "name_eq" and resource["name"] != term.args[0]:
            return False
        if term.kind == "name_contains" and term.args[0] not in resource["name"]:
            return False
        if term.kind == "trashed" and resource["trashed"] != (term.args[0] == "true"):
            return False
        if term.kind == "mime_eq" and resource["mimeType"] != term.args[0]:
            return False
        if term.kind == "mime_ne" and resource["mimeType"] == term.args[0]:
            return False
    return True


def _split_top(text: str) -> list[str]:
    """Split ``a,b(c,d),e`` at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _pick(resource: dict[str, Any], spec: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in _split_top(spec):
        if part == "*":
            return dict(resource)
        name, _, sub = part.partition("(")
        name = name.strip()
        if name not in resource:
            continue
        if sub:
            inner = sub[:-1]
            value = resource[name]
            out[name] = [_pick(v, inner) for v in value] if isinstance(value, list) else _pick(value, inner)
        else:
            out[name] = resource[name]
    return out


def select_fields(resource: dict[str, Any], fields: str | None, listing: bool = False) -> dict[str, Any]:
    """Drive's partial response: only ``fields``; without it v3's defaults (a few keys per file)."""
    if fields:
        return _pick(resource, fields)
    default = ("kind", "id", "name", "mimeType")
    if listing:
        files = [{k: f[k] for k in default if k in f} for f in resource.get("files", [])]
        return {k: v for k, v in resource.items() if k != "files"} | {"files": files}
    return {k: resource[k] for k in default if k in resource}


# Drive's real error bodies (domain, reason, message) per fault kind.
ERRORS: dict[str, tuple[int, str, str, str]] = {
    "429": (429, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    "500": (500, "global", "backendError", "Backend Error"),
    "502": (502, "global", "badGateway", "Bad Gateway"),
    "503": (503, "global", "backendError", "Backend Error"),
    "504": (504, "global", "gatewayTimeout", "Gateway Timeout"),
    "rateLimitExceeded": (403, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    "userRateLimitExceeded": (403, "usageLimits", "userRateLimitExceeded", "User Rate Limit Exceeded"),
    "storageQuotaExceeded": (
        403,
        "usageLimits",
        "storageQuotaExceeded",
        (
            "Service Accounts do not have storage quota. Leverage shared drives "
            "(https://developers.google.com/workspace/drive/api/guides/about-shareddrives), "
            "or use OAuth delegation instead."
        ),
    ),
    "notFound": (404, "global", "notFound", "File not found: ."),
    "insufficientFilePermissions": (
        403,
        "global",
        "insufficientFilePermissions",
        "The user does not have sufficient permissions for this file.",
    ),
    "invalid": (400, "global", "invalid", "Invalid Value"),
    "badRequest": (400, "global", "badRequest", "Bad Request"),
    "authError": (401, "global", "authError", "Invalid Credentials"),
    "fileNotDownloadable": (
        403,
        "global",
        "fileNotDownloadable",
        "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
    ),
    "requestedRangeNotSatisfiable": (416, "global", "requestedRangeNotSatisfiable", "Request range not satisfiable"),
}


def error_body(kind: str, message: str | None = None) -> tuple[int, bytes]:
    code, domain, reason, default = ERRORS[kind]
    msg = message or default
    err = {"domain": domain, "reason": reason, "message": msg}
    if kind == "notFound":
        err["locationType"], err["location"] = "parameter", "fileId"
    if kind == "authError":
        err["locationType"], err["location"] = "header", "Authorization"
    return code, json.dumps({"error": {"errors": [err], "code": code, "message": msg}}).encode()


def split_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], bytes]:
    """The (JSON metadata, media) of a ``multipart/related`` body as the client library writes it."""
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    opening = b"--" + boundary
    linesep = b"\r\n" if body.startswith(opening + b"\r\n") else b"\n"
    parts = body.split(linesep + opening)
    parts[0] = parts[0][len(opening) :]
    payloads = []
    for part in parts[:2]:
        part = part[len(linesep) :]
        head_end = part.index(linesep + linesep)
        payloads.append(part[head_end + 2 * len(linesep) :])
    return json.loads(payloads[0] or b"{}"), payloads[1]


def content_range(header: str) -> tuple[int | None, int | None, int | None]:
    """``bytes a-b/total`` -> (a, b, total); ``bytes */total`` -> (None, None, total); ``*`` total -> None."""
    spec = header.removeprefix("bytes ").strip()
    if not spec:
        return None, None, None
    span, _, total = spec.partition("/")
    size = int(total) if total and total != "*" else None
    if span == "*":
        return None, None, size
    first, _, last = span.partition("-")
    return int(first), int(last), size


# -- the fake's resource model ------------------------------------------------------------------------------


@dataclass
class Fault:
    """One queued fault. ``on`` names the operation it hits (see :meth:`DriveFake.operation_of`)."""

    # a key of ERRORS, "drop" (reset mid-body), "stale" (answer, then silently close), "lost_reply" (do the
    # work, then reset instead of answering: the client cannot know whether it happened) or "session_expired"
    # (forget the resumable session: the chunk gets 404)
    kind: str
    on: str = "any"
    drop_after: int = 0  # for "drop": body bytes read before the connection is reset
    skip: int = 0  # matching operations to let through before this fault fires


@dataclass
class FakeFile:
    id: str
    name: str
    mime_type: str
    parents: list[str]
    content: bytes = b""
    app_properties: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    trashed: bool = False
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)
    listable_after: float = 0.0
    drive_id: str | None = None  # the shared drive holding the file (None: My Drive)
    can_delete: bool = True  # the caller's capability (shared drives: organizers only)
    _md5: tuple[int, str] | None = field(default=None, repr=False, compare=False)

    @property
    def md5(self) -> str:
        """MD5 of the content, computed once per content (listings ask for it on every file)."""
        if self._md5 is None or self._md5[0] != id(self.content):
            self._md5 = (id(self.content), hashlib.md5(self.content).hexdigest())
        return self._md5[1]

    def resource(self) -> dict[str, Any]:
        res: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "createdTime": rfc3339(self.created),
            "modifiedTime": rfc3339(self.modified),
        }
        if self.drive_id is not None:
            res["driveId"] = self.drive_id
        res["capabilities"] = {
            "canDelete": self.can_delete,
            "canTrash": True,
            "canAddChildren": self.mime_type == FOLDER_MIME,
        }
        if self.mime_type == FOLDER_MIME and self.drive_id is not None:
            res["capabilities"]["canDeleteChildren"] = self.can_delete
        if self.app_properties:
            res["appProperties"] = dict(self.app_properties)
        if self.properties:
            res["properties"] = dict(self.properties)
        if self.mime_type != FOLDER_MIME:
            res["size"] = str(len(self.content))
            res["md5Checksum"] = self.md5
        return res


@dataclass
class UploadSession:
    metadata: dict[str, Any]
    query: dict[str, str]
    total: int | None
    file_id: str | None  # set for files.update
    data: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"
