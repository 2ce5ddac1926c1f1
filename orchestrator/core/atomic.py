"""Atomic file writes: temp file in the same folder, fsync, rename over the target, fsync the folder.

A reader sees either the old content or the new, never a torn file, even after ``kill -9`` or power loss.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

TMP_SUFFIX = ".tmp-orch"


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some FUSE mounts refuse)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some FUSE mounts refuse opening folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path_for(target: Path) -> Path:
    """A unique temp name beside ``target`` (same folder, so the rename cannot cross filesystems)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}")


@contextmanager
def atomic_open(target: Path) -> Iterator[BinaryIO]:
    """Write ``target`` through a file handle; it appears (complete, fsynced) only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        with open(tmp, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data`` atomically."""
    with atomic_open(target) as fh:
        fh.write(data)


def atomic_write_text(target: Path, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def atomic_write_json(target: Path, obj: Any) -> None:
    atomic_write_bytes(target, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def atomic_copy_stream(src: BinaryIO, target: Path, chunk_size: int = 8 << 20) -> int:
    """Copy a readable stream into ``target`` atomically; returns the number of bytes written."""
    with atomic_open(target) as out:
        shutil.copyfileobj(src, out, chunk_size)
        return out.tell()


def is_temp_name(name: str) -> bool:
    """True for the temp files this module creates (to skip them in listings)."""
    return name.endswith(TMP_SUFFIX)
