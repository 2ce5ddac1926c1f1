"""``<home>/results/``: what a user takes away, with plain names, enough on its own after the VM is gone.

Job kinds fill it through :class:`ResultsFolder` (the darknet job: weights, cfg, names, obj.data and a text
with the commands; the face job: detections, summary, video). Each file is replaced atomically, so a reader
(or Drive's upload) never sees half a file.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.core.atomic import atomic_copy_stream, atomic_write_text
from orchestrator.core.paths import JobPaths


class ResultsFolder:
    """The job's results folder; every name is a plain file name inside it."""

    def __init__(self, paths: JobPaths) -> None:
        self.root = paths.results

    def _target(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"results: {name!r} is not a plain file name")
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / name

    def copy(self, name: str, source: Path) -> Path:
        """Copy ``source`` in as ``name`` (atomically)."""
        target = self._target(name)
        with open(source, "rb") as fh:
            atomic_copy_stream(fh, target)
        return target

    def write_text(self, name: str, text: str) -> Path:
        target = self._target(name)
        atomic_write_text(target, text)
        return target

    def files(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_file()) if self.root.is_dir() else []
