"""Commit what a session wrote to Google Drive before saying the job stopped or completed (Colab only).

Colab's Drive mount writes into a local cache and uploads in the background, file by file, in no guaranteed
order; ``fsync`` does not wait for the upload, and whatever is queued when the VM goes is lost. The only call that
waits for the queue is ``google.colab.drive.flush_and_unmount()``. At a clean end of a session (completed, or
paused for the deadline or a Ctrl-C) whose job home is on the Drive mount, the runner calls it, so ``completed``
or ``paused`` is reported only once Drive has everything.

Its cost: the wait for the pending uploads (about the size of the newest checkpoint divided by the upload
bandwidth: seconds for small files, a minute or more for a 250 MB darknet backup), and the mount is gone
afterwards: a later cell mounts Drive again (``drive.mount('/content/drive')``). ``session.flush_drive: never``
turns it off (e.g. when the notebook goes on using Drive after the job).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.core.logs import get_logger
from orchestrator.core.session import on_ephemeral_vm

log = get_logger(__name__)

#: Where Colab mounts Google Drive.
DRIVE_MOUNT_POINTS: tuple[str, ...] = ("/content/drive",)
FLUSH_TIMEOUT_MS = 15 * 60 * 1000


def drive_mount_of(path: Path) -> str | None:
    """The Drive mount point ``path`` lies under, or None."""
    text = str(path)
    return next((m for m in DRIVE_MOUNT_POINTS if text == m or text.startswith(m.rstrip("/") + "/")), None)


def colab_flusher() -> Callable[[int], None] | None:
    """``google.colab.drive.flush_and_unmount`` where it exists (a Colab runtime), else None."""
    try:
        drive = importlib.import_module("google.colab.drive")
    except ImportError:
        return None
    flush = getattr(drive, "flush_and_unmount", None)
    return (lambda timeout_ms: flush(timeout_ms=timeout_ms)) if callable(flush) else None


def flush_drive(home: Path, mode: str = "auto", flusher: Callable[[int], None] | None = None,
                on_colab: bool | None = None) -> float | None:
    """Flush the Drive mount holding ``home`` (``mode`` auto: on Colab only); seconds it took, or None if not done."""
    if mode == "never" or drive_mount_of(home) is None:
        return None
    if on_colab is None:
        on_colab = on_ephemeral_vm()
    flush = flusher if flusher is not None else colab_flusher()
    if not on_colab or flush is None:
        return None
    started = time.monotonic()
    log.info("flushing Google Drive so everything this session wrote is uploaded (the mount is unmounted "
             "afterwards; mount it again to use it)")
    try:
        flush(FLUSH_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001 - a failed flush must not turn a clean stop into a crash
        log.warning("Drive flush failed (%s): the newest files may not have reached Drive yet", exc)
        return None
    seconds = time.monotonic() - started
    log.info("Drive flushed in %.0fs", seconds)
    return seconds
