"""The job's append-only event journal (JSON lines in the job's home).

One line per event: ``{"t": <epoch seconds>, "event": "<name>", ...fields}``. Each append is flushed and
fsynced. A line torn by ``kill -9`` mid-write is skipped by readers, and the next append starts on a fresh line,
so a torn tail never swallows a later event.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

_TAIL_BLOCK = 64 * 1024


class Journal:
    """Append and read events of one job."""

    def __init__(self, path: Path, now: Callable[[], float] = time.time) -> None:
        self.path = path
        self._now = now

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        entry = {"t": round(self._now(), 3), "event": event, **fields}
        line = json.dumps(entry, default=str, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as fh:
            if fh.tell() > 0 and not self._ends_with_newline():
                fh.write(b"\n")  # a previous writer died mid-line: keep our event on its own line
            fh.write(line.encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def events(self) -> Iterator[dict[str, Any]]:
        """Every readable event, oldest first (torn or corrupt lines skipped)."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return
        with fh:
            for raw in fh:
                entry = _parse(raw)
                if entry is not None:
                    yield entry

    def tail(self, count: int) -> list[dict[str, Any]]:
        """The newest ``count`` readable events, oldest first, reading only the end of the file."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        block = _TAIL_BLOCK
        with open(self.path, "rb") as fh:
            while True:
                start = max(0, size - block)
                fh.seek(start)
                lines = fh.read(size - start).split(b"\n")
                if start > 0:
                    lines = lines[1:]  # first line may be partial
                parsed = [e for e in (_parse(x) for x in lines) if e is not None]
                if len(parsed) >= count or start == 0:
                    return parsed[-count:] if count else []
                block *= 4


def _parse(raw: bytes) -> dict[str, Any] | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        entry = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return entry if isinstance(entry, dict) and "event" in entry else None
