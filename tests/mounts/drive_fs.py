"""The FUSE file system of the Drive mount double, and its process entry point (``python -m tests.mounts``).

It serves a folder ("the view") through FUSE, with the costs of the Colab Drive mount:

- every ``open``/``create`` sleeps ``open_latency_s`` (a round trip), every read request (the kernel asks for up
  to 128 KiB at a time) sleeps ``read_latency_s``;
- listing a folder sleeps ``list_base_s + entries * list_cost_per_entry_s``, and a folder of more than
  ``list_limit`` entries fails with EIO, as Drive's mount does around 7,000 files;
- with ``lazy_uploads`` the view is a local cache (a copy of the backing folder made at mount time): the VM sees
  its writes at once, and each change is queued (``upload_queue.UploadQueue``) and applied to the backing folder
  later by an uploader thread, one operation every ``upload_interval_s`` (never, when it is None: only on
  ``pump``/``drain``). Without ``lazy_uploads`` the view is the backing folder itself (write-through).

Drive has no symbolic or hard links: ``symlink`` and ``link`` fail with EPERM.

The parent (``harness.DriveMount``) talks to this process over stdin/stdout, one JSON line each way:
``{"cmd": "pending"|"pump"|"drain"|"stats", "count": N}`` -> ``{"ok": true, ...}``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mfusepy

from tests.mounts.behaviour import MountBehaviour
from tests.mounts.upload_queue import UploadQueue


@dataclass
class MountStats:
    opens: int = 0
    listings: int = 0
    list_errors: int = 0


class DriveFS(mfusepy.Operations):
    """A pass-through file system over ``root`` with Drive's latencies, listing limit and (optionally) lazy uploads."""

    use_ns = True

    def __init__(self, root: Path, behaviour: MountBehaviour, queue: UploadQueue | None, blobs: Path) -> None:
        self.root = root
        self.behaviour = behaviour
        self.queue = queue
        self.blobs = blobs
        self.stats = MountStats()
        self._dirty: set[int] = set()
        self._lock = threading.Lock()
        self._blob_seq = 0

    # -- helpers ---------------------------------------------------------------------------------------------
    def _real(self, path: str) -> str:
        return os.path.join(str(self.root), path.lstrip("/"))

    @staticmethod
    def _rel(path: str) -> str:
        return path.strip("/")

    def _round_trip(self) -> None:
        with self._lock:
            self.stats.opens += 1
        if self.behaviour.open_latency_s:
            time.sleep(self.behaviour.open_latency_s)

    def _enqueue(self, kind: str, path: str, target: str = "") -> None:
        if self.queue is None:
            return
        blob = ""
        if kind == "put":
            with self._lock:
                self._blob_seq += 1
                blob = str(self.blobs / f"{self._blob_seq:08d}")
            shutil.copyfile(self._real(path), blob)  # the bytes as they are now, uploaded later
        self.queue.add(kind, self._rel(path), self._rel(target), blob)

    # -- metadata --------------------------------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._real(path))
        keys = ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")
        attrs: dict[str, Any] = {k: getattr(st, k) for k in keys}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        return attrs

    def access(self, path: str, amode: int) -> int:
        if not os.access(self._real(path), amode):
            raise mfusepy.FuseOSError(errno.EACCES)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        sv = os.statvfs(self._real(path))
        return {k: getattr(sv, k) for k in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                            "f_files", "f_flag", "f_frsize", "f_namemax")}

    def chmod(self, path: str, mode: int) -> int:
        os.chmod(self._real(path), mode)
        return 0

    def chown(self, path: str, uid: int, gid: int) -> int:
        return 0

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        os.utime(self._real(path), ns=times) if times else os.utime(self._real(path))
        return 0

    # -- folders ---------------------------------------------------------------------------------------------
    def readdir(self, path: str, fh: int) -> list[str]:
        names = os.listdir(self._real(path))
        with self._lock:
            self.stats.listings += 1
        b = self.behaviour
        if b.list_limit is not None and len(names) > b.list_limit:
            with self._lock:
                self.stats.list_errors += 1
            raise mfusepy.FuseOSError(errno.EIO)
        delay = b.list_base_s + len(names) * b.list_cost_per_entry_s
        if delay:
            time.sleep(delay)
        return [".", "..", *names]

    def mkdir(self, path: str, mode: int) -> int:
        os.mkdir(self._real(path), mode)
        self._enqueue("mkdir", path)
        return 0

    def rmdir(self, path: str) -> int:
        os.rmdir(self._real(path))
        self._enqueue("rmdir", path)
        return 0

    # -- files -----------------------------------------------------------------------------------------------
    def open(self, path: str, flags: int) -> int:
        self._round_trip()
        fd = os.open(self._real(path), flags)
        if flags & os.O_TRUNC:
            self._dirty.add(fd)
        return fd

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._round_trip()
        fd = os.open(self._real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        self._dirty.add(fd)
        return fd

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if self.behaviour.read_latency_s:
            time.sleep(self.behaviour.read_latency_s)  # one round trip per read request (up to 128 KiB)
        return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._dirty.add(fh)
        return os.pwrite(fh, data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        if fh is not None:
            os.ftruncate(fh, length)
            self._dirty.add(fh)
        else:
            os.truncate(self._real(path), length)
            self._enqueue("put", path)
        return 0

    def flush(self, path: str, fh: int) -> int:
        """``close()`` on the VM (synchronous, unlike ``release``): a changed file is queued for upload now."""
        if fh in self._dirty and path and os.path.exists(self._real(path)):
            self._dirty.discard(fh)
            self._enqueue("put", path)
        return 0

    def fsync(self, path: str, datasync: int, fh: int) -> int:
        os.fsync(fh)  # into the local cache only: Drive's fsync does not wait for the upload
        return 0

    def release(self, path: str, fh: int) -> int:
        dirty = fh in self._dirty
        self._dirty.discard(fh)
        os.close(fh)
        if dirty and path and os.path.exists(self._real(path)):
            self._enqueue("put", path)
        return 0

    def unlink(self, path: str) -> int:
        os.unlink(self._real(path))
        self._enqueue("unlink", path)
        return 0

    def rename(self, old: str, new: str) -> int:
        os.replace(self._real(old), self._real(new))
        self._enqueue("rename", old, new)
        return 0

    def symlink(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)

    def link(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EPERM)


def _control_loop(fs: DriveFS, queue: UploadQueue | None) -> None:
    """Answer the parent's commands on stdin, one JSON line each; exits with the parent's pipe."""
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        reply: dict[str, Any] = {"ok": True}
        if cmd == "pump":
            reply["applied"] = queue.pump(int(request.get("count", 1))) if queue is not None else 0
        elif cmd == "drain":
            reply["applied"] = queue.drain() if queue is not None else 0
        elif cmd not in ("pending", "stats", "pump", "drain"):
            reply = {"ok": False, "error": f"unknown command {cmd!r}"}
        reply["pending"] = queue.count() if queue is not None else 0
        reply["stats"] = asdict(fs.stats)
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def _uploader(queue: UploadQueue, interval: float) -> None:
    while True:
        time.sleep(interval)
        queue.pump(1)


def serve(backing: Path, cache: Path, mountpoint: Path, behaviour: MountBehaviour) -> None:
    """Mount and serve until unmounted (blocks)."""
    queue: UploadQueue | None = None
    blobs = cache / "blobs"
    if behaviour.lazy_uploads:
        view = cache / "view"
        if view.exists():
            shutil.rmtree(view)
        shutil.copytree(backing, view, symlinks=True)
        blobs.mkdir(parents=True, exist_ok=True)
        queue = UploadQueue(backing, seed=behaviour.seed)
        root = view
    else:
        root = backing
    fs = DriveFS(root, behaviour, queue, blobs)
    threading.Thread(target=_control_loop, args=(fs, queue), daemon=True).start()
    if queue is not None and behaviour.upload_interval_s is not None:
        threading.Thread(target=_uploader, args=(queue, behaviour.upload_interval_s), daemon=True).start()
    mfusepy.FUSE(fs, str(mountpoint), foreground=True, nothreads=False, fsname="drive-double", auto_unmount=True,
                 hard_remove=True)
    if queue is not None:
        queue.drain()  # a clean unmount uploads what arrived after the last drain (releases are asynchronous)


def main() -> None:
    config = json.loads(sys.argv[1])
    serve(Path(config["backing"]), Path(config["cache"]), Path(config["mountpoint"]),
          MountBehaviour(**config["behaviour"]))
