"""Fast, bounded-memory, durable file copies.

The kernel does the copying where it can (``copy_file_range``, then ``sendfile``), so a 250 MB checkpoint
never passes through Python buffers; a plain 1 MiB read/write loop is the fallback for filesystems that refuse
both (some FUSE mounts). Every copy is fsynced and published by rename (temp name in the destination folder),
so a reader, or a resume after ``kill -9``, sees the old file or the complete new one.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from orchestrator.core.atomic import fsync_dir, temp_path_for

FALLBACK_CHUNK = 1 << 20
KERNEL_CHUNK = 64 << 20  # bytes per copy_file_range/sendfile call (the kernel streams it; no user memory)

# errnos meaning "this fast path is not supported here": fall back to the next one
_UNSUPPORTED = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF, errno.EIO}


def _copy_kernel(in_fd: int, out_fd: int, use: str) -> int | None:
    """Copy the rest of ``in_fd`` to ``out_fd`` in the kernel; None if unsupported before any byte moved."""
    copied = 0
    call = os.copy_file_range if use == "copy_file_range" else None
    while True:
        try:
            if call is not None:
                n = call(in_fd, out_fd, KERNEL_CHUNK)
            else:
                n = os.sendfile(out_fd, in_fd, None, KERNEL_CHUNK)
        except OSError as exc:
            if copied == 0 and exc.errno in _UNSUPPORTED:
                return None
            raise
        if n == 0:
            return copied
        copied += n


def _copy_loop(in_fd: int, out_fd: int) -> int:
    copied = 0
    buf = bytearray(FALLBACK_CHUNK)
    view = memoryview(buf)
    with open(in_fd, "rb", buffering=0, closefd=False) as src:
        while n := src.readinto(buf):
            pos = 0
            while pos < n:
                pos += os.write(out_fd, view[pos:n])
            copied += n
    return copied


def copy_fd(in_fd: int, out_fd: int) -> int:
    """Copy from the current offset of ``in_fd`` to ``out_fd``; returns bytes copied. Bounded memory."""
    for method in ("copy_file_range", "sendfile"):
        if method == "copy_file_range" and not hasattr(os, "copy_file_range"):
            continue
        start = os.lseek(out_fd, 0, os.SEEK_CUR)
        done = _copy_kernel(in_fd, out_fd, method)
        if done is not None:
            return done
        os.lseek(out_fd, start, os.SEEK_SET)
    return _copy_loop(in_fd, out_fd)


def copy_file_atomic(src: Path, dest: Path) -> int:
    """Copy ``src`` over ``dest`` atomically (temp + fsync + rename + fsync folder); returns bytes copied.

    Raises OSError (FileNotFoundError if ``src`` is missing); the caller converts it to its own error.
    Nothing is created when ``src`` cannot be opened.
    """
    in_fd = os.open(src, os.O_RDONLY)
    try:
        tmp = temp_path_for(dest)
        for attempt in range(3):
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileNotFoundError:
                # the folder was pruned since the mkdir (a store removes a folder when another thread deletes its
                # last object, e.g. a face job's published input while another input commits): make it again
                if attempt == 2:
                    raise
        try:
            try:
                copied = copy_fd(in_fd, out_fd)
                os.fsync(out_fd)
            finally:
                os.close(out_fd)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        os.close(in_fd)
    fsync_dir(dest.parent)
    return copied
