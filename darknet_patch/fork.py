"""Which darknet a source tree is: pjreddie/darknet (the seed's fork) or AlexeyAB/darknet (recommended).

Detected from content, not from the folder or remote name (users fork and rename): AlexeyAB has
``src/dark_cuda.c``, ``src/yolo_v2_class.cpp`` and the ``CUDNN_HALF``/``LIBSO`` Makefile switches; pjreddie
has ``src/cuda.c`` and ``examples/detector.c``.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from orchestrator.core.errors import BuildError

_SOURCE_SUFFIXES = (".c", ".cpp", ".cu", ".h", ".hpp")


class Fork(str, enum.Enum):
    PJREDDIE = "pjreddie"
    ALEXEYAB = "alexeyab"


def detect_fork(source: Path) -> Fork:
    """The fork of the darknet tree at ``source``; BuildError if it is not a darknet tree."""
    source = Path(source)
    makefile = source / "Makefile"
    if not makefile.is_file():
        raise BuildError(f"{source} has no Makefile: it is not a darknet source tree (clone one, or fix the path)")
    text = makefile.read_text(encoding="utf-8", errors="replace")
    ab_score = sum(
        (
            (source / "src" / "dark_cuda.c").is_file(),
            (source / "src" / "yolo_v2_class.cpp").is_file(),
            re.search(r"^\s*CUDNN_HALF\s*=", text, re.MULTILINE) is not None,
            re.search(r"^\s*LIBSO\s*=", text, re.MULTILINE) is not None,
        )
    )
    pj_score = sum(
        (
            (source / "src" / "cuda.c").is_file(),
            (source / "examples" / "detector.c").is_file(),
            re.search(r"^\s*EXECOBJA\s*=", text, re.MULTILINE) is not None,
        )
    )
    if ab_score == 0 and pj_score == 0:
        raise BuildError(
            f"{source} does not look like darknet (no src/dark_cuda.c, src/cuda.c or examples/detector.c); "
            "point darknet.source at a pjreddie/darknet or AlexeyAB/darknet checkout"
        )
    return Fork.ALEXEYAB if ab_score >= pj_score else Fork.PJREDDIE


ContentView = Callable[[str, bytes], bytes]


def source_revision(source: Path, view: ContentView | None = None) -> str:
    """The git commit of a clean git tree, else a hash of its sources as seen through ``view``.

    A git tree with uncommitted edits to tracked files (darknet users edit ``detector.c``) is hashed: its
    commit would hand out a cached binary built without those edits.

    ``view`` maps (relative path, bytes) to the bytes to hash: the build passes the patch set applied in
    memory, so a tree hashes the same before and after it was patched in place.
    """
    source = Path(source)
    if (source / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
            ).stdout.strip()
            edits = subprocess.run(
                ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()
            if commit and not edits:
                return commit
        except (OSError, subprocess.CalledProcessError):
            pass
    return "content-" + content_hash(source, view)


def content_hash(source: Path, view: ContentView | None = None) -> str:
    """sha256 over the Makefile and every C/C++/CUDA source and header (sorted paths, names and bytes)."""
    digest = hashlib.sha256()
    files = [Path(source) / "Makefile"]
    for folder in ("src", "examples", "include"):
        root = Path(source) / folder
        if root.is_dir():
            for dirpath, _, names in os.walk(root):
                files.extend(Path(dirpath) / n for n in names if n.endswith(_SOURCE_SUFFIXES))
    for path in sorted(files):
        if path.is_file():
            rel = path.relative_to(source).as_posix()
            data = path.read_bytes()
            digest.update(rel.encode() + b"\0")
            digest.update(view(rel, data) if view else data)
    return digest.hexdigest()[:16]
