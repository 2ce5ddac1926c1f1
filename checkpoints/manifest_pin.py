"""What the job home remembers of its manifest: the store address (Drive file ID) and the last revision written.

A store whose index lags (Drive's ``files.list`` shows a new file only after a while, or shows a deleted one for a
while) cannot by itself tell "no manifest yet" from "not listed yet". The job home can: after every manifest write
the writer records the manifest's file ID and revision here (a small JSON file, written atomically). A later
session reads the manifest by that ID, and one that finds it missing or older than recorded waits for the store
to catch up instead of starting over (see :meth:`checkpoints.manifest.ManifestStore.load`).

Only stores that give objects an address (a ``file_id``) are pinned; a folder store needs no pin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class PinnedManifest:
    file_id: str
    revision: int


class ManifestPin:
    """The pin file in a job home (``JobPaths.manifest_pin``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._written: PinnedManifest | None = None

    def __repr__(self) -> str:
        return f"ManifestPin({str(self.path)!r})"

    def read(self) -> PinnedManifest | None:
        """The recorded manifest, or None when nothing was recorded (or the record is unreadable)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return PinnedManifest(file_id=str(doc["file_id"]), revision=int(doc["revision"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the unreadable manifest record %s (%s)", self.path, exc)
            return None

    def write(self, file_id: str, revision: int) -> None:
        pinned = PinnedManifest(file_id, revision)
        if self._written == pinned:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, {"file_id": file_id, "revision": revision})
        self._written = pinned


__all__ = ["ManifestPin", "PinnedManifest"]
