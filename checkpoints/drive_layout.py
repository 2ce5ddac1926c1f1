"""How store objects map onto Drive files: the properties that carry keys, their limits, and the queries.

An object is a file in the store folder whose public ``properties`` hold:

* ``orch_key``: the store key, once the file is published (readers look only at this);
* ``orch_pending``: the store key while the upload is being verified (never seen by readers);
* ``orch_gen``: the publish generation (higher wins when two files carry the same key).

Drive caps a property at 124 bytes of UTF-8 (name plus value), which bounds keys at 112 bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from checkpoints.store import StoreEntry, check_key
from orchestrator.core.errors import StorageError

KEY_PROP, PENDING_PROP, GEN_PROP = "orch_key", "orch_pending", "orch_gen"
MAX_KEY_BYTES = 124 - len(PENDING_PROP)
FIELDS = "id,name,size,md5Checksum,modifiedTime,properties,trashed"
FOLDER_MIME = "application/vnd.google-apps.folder"


def check_drive_key(key: str) -> str:
    """A valid store key (see ``checkpoints.store.check_key``) that also fits in a Drive property."""
    check_key(key)
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise StorageError(f"store key {key!r} is longer than {MAX_KEY_BYTES} UTF-8 bytes (Drive property limit)")
    return key


def quote(value: str) -> str:
    """A string literal for a Drive ``q`` query (single quotes; ``\\`` and ``'`` escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def property_query(prop: str, value: str) -> str:
    """The ``q`` term matching files whose public property ``prop`` equals ``value``."""
    return f"properties has {{ key={quote(prop)} and value={quote(value)} }}"


def file_epoch(rfc3339: str) -> float:
    """Seconds since the epoch of a Drive timestamp (``2026-11-22T03:20:53.123Z``)."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def generation(meta: dict[str, Any]) -> int:
    """The publish generation of a file (0 if absent or garbled)."""
    value = (meta.get("properties") or {}).get(GEN_PROP, "0")
    return int(value) if str(value).isdigit() else 0


def entry_of(meta: dict[str, Any]) -> StoreEntry:
    """The StoreEntry of a published file's metadata."""
    return StoreEntry(
        key=meta["properties"][KEY_PROP],
        size=int(meta.get("size", 0)),
        modified=file_epoch(meta["modifiedTime"]),
        file_id=meta["id"],
    )
