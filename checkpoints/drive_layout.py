"""How store objects map onto Drive files: folders and names for people, properties for the store.

A person browsing Drive sees real folders and each file under its own name: the key
``checkpoints/00000/00000004-yolov3_final.weights`` is the file ``yolov3_final.weights`` in the folder
``checkpoints/00000`` under the store folder (the sequence prefix goes to ``appProperties``); keys without a
folder (the manifest) live in the sub-folder ``.orchestrator``, out of the way. Names are for people only:
they are not unique, and nothing is found by name.

The store finds objects by the public ``properties`` of each file:

* ``orch_root``: the store folder's ID (one query finds a store's objects in every sub-folder);
* ``orch_key``: the store key (readers look only at this);
* ``orch_pending``: the store key of an upload that was never published (left by older versions);
* ``orch_gen``: the publish generation (higher wins when two files carry the same key).

``appProperties`` (private to the OAuth client that wrote them, so never relied on) describe a checkpoint:
``orch_seq``, ``orch_counter``, ``orch_sha256``. The store folder's own properties pin the file ID of keys
that must be found without a listing (``orch_pin_*``: the manifest), because ``files.list`` lags.

Drive caps a property at 124 bytes of UTF-8 (name plus value), which bounds keys at 112 bytes.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from checkpoints.store import StoreEntry, check_key
from orchestrator.core.errors import StorageError

KEY_PROP, PENDING_PROP, GEN_PROP, ROOT_PROP = "orch_key", "orch_pending", "orch_gen", "orch_root"
LABEL_PREFIX = "orch_"
MAX_KEY_BYTES = 124 - len(PENDING_PROP)
FIELDS = "id,name,size,md5Checksum,modifiedTime,properties,trashed"
FOLDER_FIELDS = "id,name,mimeType,trashed,driveId,properties,capabilities"
FOLDER_MIME = "application/vnd.google-apps.folder"
INTERNAL_FOLDER = ".orchestrator"
_SEQ_PREFIX = re.compile(r"^\d{8}-(?=.)")


def folder_path(key: str) -> tuple[str, ...]:
    """The Drive folders (below the store folder) that hold ``key``'s file."""
    parts = key.split("/")
    return tuple(parts[:-1]) if len(parts) > 1 else (INTERNAL_FOLDER,)


def display_name(key: str) -> str:
    """The file name people see: the key's last part without a sequence prefix (``00000004-``)."""
    return _SEQ_PREFIX.sub("", key.rsplit("/", 1)[-1])


def pin_property(key: str) -> str:
    """The store folder's property holding the file ID of ``key``."""
    return "orch_pin_" + hashlib.sha1(key.encode("utf-8"), usedforsecurity=False).hexdigest()[:12]


def label_properties(labels: dict[str, str]) -> dict[str, str]:
    """``appProperties`` for descriptive labels (``seq`` -> ``orch_seq``), cut to Drive's size limit."""
    return {LABEL_PREFIX + name: value[: 124 - len(LABEL_PREFIX + name)] for name, value in labels.items()}


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
