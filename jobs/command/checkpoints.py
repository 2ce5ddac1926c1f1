"""Finding a command job's checkpoints in its output folder (pure ordering logic + one glob)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from checkpoints.discovery import counter_from_name
from orchestrator.atomic import is_temp_name


@dataclass(frozen=True)
class FoundCheckpoint:
    path: Path
    counter: int | None
    mtime: float
    size: int


def order_key(found: FoundCheckpoint) -> tuple[int, int, float]:
    """Newest first by counter; files without a counter rank below numbered ones, then by mtime."""
    return (1 if found.counter is not None else 0, found.counter or 0, found.mtime)


def scan_checkpoints(folder: Path, pattern: str) -> list[FoundCheckpoint]:
    """Checkpoints matching ``pattern`` in ``folder``, newest first; empty files and temp files ignored."""
    found = []
    for path in folder.glob(pattern):
        if is_temp_name(path.name) or not path.is_file():
            continue
        stat = path.stat()
        if stat.st_size == 0:
            continue
        found.append(FoundCheckpoint(path, counter_from_name(path.name), stat.st_mtime, stat.st_size))
    return sorted(found, key=order_key, reverse=True)
