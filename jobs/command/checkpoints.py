"""A command job's checkpoints in its durable output folder: one glob per poll, ordered like discovery."""

from __future__ import annotations

from pathlib import Path

from checkpoints.discovery import Candidate, counter_from_name, order_candidates
from orchestrator.core.atomic import is_temp_name


def scan_checkpoints(folder: Path, pattern: str) -> list[Candidate]:
    """Checkpoints matching ``pattern`` in ``folder``, newest first; empty files and temp files ignored."""
    found = []
    for path in folder.glob(pattern):
        if is_temp_name(path.name) or not path.is_file():
            continue
        stat = path.stat()
        if stat.st_size == 0:
            continue
        found.append(Candidate(name=path.name, where="local", counter=counter_from_name(path.name),
                               size=stat.st_size, modified=stat.st_mtime, path=path))
    return order_candidates(found)
