"""The lazy-upload queue of the Drive mount double: what the VM wrote, waiting to reach "Drive".

Model (the Colab Drive mount's, as seen in the field): the VM writes into a local cache and sees its writes at once;
a background uploader later applies them to Drive one by one. Operations on one path are applied in the order they
were made; operations on unrelated paths are applied in any order (chosen by a seeded random generator, so a trial
is reproducible). Two paths are related when they are equal or one is an ancestor of the other, so a folder is made
before a file inside it is uploaded and a rename waits for every earlier operation on its source and target.
Whatever is still queued when the VM vanishes is lost.

This module is pure bookkeeping plus the file operations that apply one queued operation to the backing folder;
it knows nothing of FUSE and is tested on its own.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path


def _related(a: str, b: str) -> bool:
    """Equal paths, or one is an ancestor of the other ("" is the root, related to everything)."""
    if a == b or not a or not b:
        return True
    return a.startswith(b + "/") or b.startswith(a + "/")


@dataclass(frozen=True)
class UploadOp:
    """One queued change. ``kind`` is put (a snapshot of a file's bytes), mkdir, unlink, rmdir or rename."""

    seq: int
    kind: str
    path: str
    target: str = ""  # rename's destination
    blob: str = ""  # put's snapshot file in the cache

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.path, self.target) if self.target else (self.path,)


@dataclass
class UploadQueue:
    """Queued operations with the per-path order constraint and a seeded choice among the ready ones."""

    backing: Path
    seed: int = 0
    pending: list[UploadOp] = field(default_factory=list)
    applied: int = 0
    _seq: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def add(self, kind: str, path: str, target: str = "", blob: str = "") -> UploadOp:
        with self._lock:
            self._seq += 1
            op = UploadOp(self._seq, kind, path, target, blob)
            self.pending.append(op)
            return op

    def count(self) -> int:
        """How many operations are queued (an operation being applied still counts)."""
        with self._lock:
            return len(self.pending)

    def ready(self) -> list[UploadOp]:
        """Operations with no earlier pending operation on a related path."""
        with self._lock:
            out: list[UploadOp] = []
            seen: list[str] = []
            for op in self.pending:
                if not any(_related(k, s) for k in op.keys for s in seen):
                    out.append(op)
                seen.extend(op.keys)
            return out

    def pump(self, count: int = 1) -> int:
        """Apply up to ``count`` ready operations, chosen at random (seeded); returns how many were applied."""
        done = 0
        with self._lock:
            while done < count and self.pending:
                op = self._random.choice(self.ready())
                self.pending.remove(op)
                apply_op(self.backing, op)
                self.applied += 1
                done += 1
        return done

    def drain(self) -> int:
        """Apply everything (still in a seeded order that respects the per-path constraint)."""
        return self.pump(len(self.pending))

    def drop(self) -> int:
        """Forget every queued operation (the VM vanished); returns how many were lost."""
        with self._lock:
            lost = len(self.pending)
            self.pending.clear()
            return lost


def apply_op(backing: Path, op: UploadOp) -> None:
    """Apply one operation to the backing folder. A file appears there whole (Drive commits an upload at once)."""
    dest = backing / op.path
    if op.kind == "put":
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.uploading")
        shutil.copyfile(op.blob, tmp)
        os.replace(tmp, dest)
        os.unlink(op.blob)
    elif op.kind == "mkdir":
        dest.mkdir(parents=True, exist_ok=True)
    elif op.kind == "unlink":
        dest.unlink(missing_ok=True)
    elif op.kind == "rmdir":
        if dest.is_dir():
            shutil.rmtree(dest)
    elif op.kind == "rename":
        if os.path.lexists(dest):
            target = backing / op.target
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not dest.is_dir():
                shutil.rmtree(target)
            os.replace(dest, target)
    else:
        raise ValueError(f"unknown upload operation {op.kind!r}")
