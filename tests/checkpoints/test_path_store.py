from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from checkpoints.memory_store import MemoryStore
from checkpoints.path_store import PathStore
from checkpoints.testing import StoreContract
from orchestrator.core.atomic import temp_path_for
from orchestrator.core.errors import StorageError


class TestPathStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> PathStore:
        return PathStore(tmp_path / "drive mount ✓" / "store")

    def leave_partial(self, store: PathStore, key: str) -> None:  # type: ignore[override]
        target = store.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        temp_path_for(target).write_bytes(b"half a checkp")


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


def test_upload_leaves_no_temp_files_and_keeps_bytes(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "s")
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(5 << 20))
    store.upload(src, "ckpt/0000/w.bin")
    assert os.listdir(tmp_path / "s" / "ckpt" / "0000") == ["w.bin"]
    assert (tmp_path / "s" / "ckpt" / "0000" / "w.bin").read_bytes() == src.read_bytes()


def test_delete_truncates_before_unlinking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the Colab mount an unlinked file goes to Drive's trash: it must hold 0 bytes by then."""
    store = PathStore(tmp_path / "s")
    store.write_bytes("ckpt/a.bin", b"x" * 1000)
    sizes_at_unlink: list[int] = []
    real_unlink = os.unlink

    def spy_unlink(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes_at_unlink.append(os.stat(path).st_size)
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", spy_unlink)
    store.delete("ckpt/a.bin")
    assert sizes_at_unlink == [0]
    assert not (tmp_path / "s" / "ckpt").exists(), "empty folders are pruned"
    assert (tmp_path / "s").is_dir()


def test_folder_entry_limit_is_enforced_for_new_keys(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "s", max_entries_per_folder=3)
    for i in range(3):
        store.write_bytes(f"f/{i}.bin", b"x")
    store.write_bytes("f/1.bin", b"replace is fine")
    with pytest.raises(StorageError, match="already holds 3 entries"):
        store.write_bytes("f/3.bin", b"x")
    src = tmp_path / "src"
    src.write_bytes(b"y")
    with pytest.raises(StorageError, match="limit 3"):
        store.upload(src, "f/4.bin")
    store.write_bytes("g/3.bin", b"other folders are fine")


def test_sweep_partials_removes_only_old_temps(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "s")
    store.write_bytes("a/b.bin", b"done")
    old = temp_path_for(tmp_path / "s" / "a" / "c.bin")
    old.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    fresh = temp_path_for(tmp_path / "s" / "a" / "d.bin")
    fresh.write_bytes(b"in flight")
    assert store.sweep_partials(older_than=3600) == [old]
    assert fresh.exists() and not old.exists()
    assert [e.key for e in store.list("")] == ["a/b.bin"]


def test_list_with_name_prefix(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "s")
    for key in ["c/micro_100.weights", "c/micro_200.weights", "c/other.weights", "cx/micro_1.weights"]:
        store.write_bytes(key, b"1")
    assert [e.key for e in store.list("c/micro_")] == ["c/micro_100.weights", "c/micro_200.weights"]


def test_an_upload_into_a_folder_pruned_meanwhile_still_lands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two threads of one job: one deletes the last object of a bucket folder (the folder is pruned) between the
    other's mkdir of that folder and the creation of its temp file there; the upload makes the folder again."""
    from checkpoints import filecopy

    store = PathStore(tmp_path / "store")
    src = tmp_path / "chunk"
    src.write_bytes(b"chunk bytes")
    real_open, pruned = os.open, []

    def open_after_a_prune(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_CREAT and not pruned:
            pruned.append(Path(path).parent)
            Path(path).parent.rmdir()  # the other thread's delete pruned the (still empty) folder
        return real_open(path, flags, *args)

    monkeypatch.setattr(filecopy.os, "open", open_after_a_prune)
    entry = store.upload(src, "checkpoints/00003/00000042-a.chunk")
    monkeypatch.undo()
    assert pruned and entry.size == 11
    assert store.read_bytes("checkpoints/00003/00000042-a.chunk") == b"chunk bytes"
