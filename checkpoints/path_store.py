"""The path store: a folder on local disk or on the Colab Drive mount (the default backend).

Key ``a/b/c.weights`` is the file ``<root>/a/b/c.weights``. Publishing is atomic: the bytes go to a unique temp
name beside the target, are fsynced, then renamed over it; listings skip temp names, so a copy cut off by
``kill -9`` is never seen (stale temps are removed by :meth:`PathStore.sweep_partials`). Rename atomicity on
the Drive mount is undocumented, which is why checkpoints get unique keys and become visible only through the
manifest (``checkpoints.manifest``), written last.

Deletion is permanent where the mount allows it: on the Colab mount ``rm`` moves the file to Drive's trash,
where it still counts against the quota for 30 days, so the file is first truncated to 0 bytes (the trashed
copy then costs nothing). See docs/checkpoints.md.
"""

from __future__ import annotations

import builtins
import os
import stat as stat_mod
import time
from pathlib import Path

from checkpoints.filecopy import copy_file_atomic
from checkpoints.store import CheckpointStore, StoreEntry, check_key, check_prefix
from orchestrator.core.atomic import atomic_write_bytes, is_temp_name
from orchestrator.core.errors import StorageError


class PathStore(CheckpointStore):
    """A checkpoint store in a folder (``<job home>/store`` by default)."""

    name = "path"

    def __init__(self, root: Path, max_entries_per_folder: int = 1000) -> None:
        if max_entries_per_folder < 2:
            raise ValueError("max_entries_per_folder must be at least 2")
        self.root = Path(root)
        self.max_entries_per_folder = max_entries_per_folder

    def __repr__(self) -> str:
        return f"PathStore({str(self.root)!r})"

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    # -- helpers -------------------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _entry(self, key: str, st: os.stat_result) -> StoreEntry:
        return StoreEntry(key=key, size=st.st_size, modified=st.st_mtime)

    def _check_folder_room(self, target: Path, key: str) -> None:
        """Refuse to add a new entry to a folder that already holds ``max_entries_per_folder`` entries."""
        if target.exists():
            return
        try:
            with os.scandir(target.parent) as it:
                count = sum(1 for e in it if not is_temp_name(e.name))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot list folder {target.parent} of store {self.root}: {exc}") from exc
        if count >= self.max_entries_per_folder:
            raise StorageError(
                f"cannot add {key!r}: folder {target.parent} already holds {count} entries "
                f"(limit {self.max_entries_per_folder}; the Drive mount fails on big folders). "
                "Use fanned-out keys (checkpoints.manifest.checkpoint_key) or delete old entries."
            )

    # -- primitives ----------------------------------------------------------------------------------------

    def list(self, prefix: str = "") -> list[StoreEntry]:
        check_prefix(prefix)
        folder_key = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root.joinpath(*folder_key.split("/")) if folder_key else self.root
        entries: list[StoreEntry] = []
        stack = [(start, folder_key)]
        while stack:
            folder, rel = stack.pop()
            try:
                it = os.scandir(folder)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise StorageError(f"cannot list {folder} in store {self.root}: {exc}") from exc
            with it:
                for item in it:
                    if is_temp_name(item.name):
                        continue
                    key = f"{rel}/{item.name}" if rel else item.name
                    try:
                        if item.is_dir(follow_symlinks=False):
                            if key.startswith(prefix) or prefix.startswith(key + "/"):
                                stack.append((Path(item.path), key))
                        elif item.is_file() and key.startswith(prefix):
                            entries.append(self._entry(key, item.stat()))
                    except FileNotFoundError:  # deleted while listing
                        continue
        entries.sort(key=lambda e: e.key)
        return entries

    def stat(self, key: str) -> StoreEntry | None:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise StorageError(f"cannot stat {key!r} in store {self.root}: {exc}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        return self._entry(key, st)

    def download(self, key: str, dest: Path) -> StoreEntry:
        path = self._path(key)
        try:
            copy_file_atomic(path, Path(dest))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageError(f"cannot download {key!r}: it is not in store {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot download {key!r} from store {self.root} to {dest}: {exc}") from exc
        entry = self.stat(key)
        if entry is None:
            raise StorageError(f"{key!r} vanished from store {self.root} during download")
        return entry

    def upload(self, src: Path, key: str) -> StoreEntry:
        target = self._path(key)
        if not Path(src).is_file():
            raise StorageError(f"cannot upload {src} as {key!r}: the source file does not exist")
        self._check_folder_room(target, key)
        try:
            copy_file_atomic(Path(src), target)
        except OSError as exc:
            raise StorageError(f"cannot upload {src} to {key!r} in store {self.root}: {exc}") from exc
        return self._stat_after_write(key)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageError(f"{key!r} is not in store {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {key!r} from store {self.root}: {exc}") from exc

    def write_bytes(self, key: str, data: bytes) -> StoreEntry:
        target = self._path(key)
        self._check_folder_room(target, key)
        try:
            atomic_write_bytes(target, data)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r} to store {self.root}: {exc}") from exc
        return self._stat_after_write(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        if not stat_mod.S_ISREG(st.st_mode):
            return
        try:
            if st.st_size:
                os.truncate(path, 0)  # the trashed copy on the Drive mount then holds no quota
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r} from store {self.root}: {exc}") from exc
        self._prune_empty_folders(path.parent)

    # -- maintenance ---------------------------------------------------------------------------------------

    def _stat_after_write(self, key: str) -> StoreEntry:
        entry = self.stat(key)
        if entry is None:
            raise StorageError(f"{key!r} is missing from store {self.root} right after it was written")
        return entry

    def _prune_empty_folders(self, folder: Path) -> None:
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty, or already gone
                return
            folder = folder.parent

    def sweep_leftovers(self, older_than: float = 24 * 3600.0) -> int:
        return len(self.sweep_partials(older_than))

    def sweep_partials(self, older_than: float = 3600.0, now: float | None = None) -> builtins.list[Path]:
        """Delete temp files left by copies that were killed (older than ``older_than`` seconds)."""
        limit = (time.time() if now is None else now) - older_than
        removed: builtins.list[Path] = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                if is_temp_name(name):
                    path = Path(folder) / name
                    try:
                        if path.stat().st_mtime < limit:
                            path.unlink()
                            removed.append(path)
                    except FileNotFoundError:
                        continue
        return removed
