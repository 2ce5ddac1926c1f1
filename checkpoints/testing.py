"""The contract every ``CheckpointStore`` backend passes: a pytest suite shipped with the package, so the author
of another store (S3, GCS, a club's NAS) runs the same tests our stores pass. It needs pytest (the ``test``
extra: ``pip install "gpu-orchestrator[test]"``); nothing else in the package imports this module.

Use it from a backend's test module by subclassing and supplying a ``store`` fixture (an empty store)::

    import pytest
    from checkpoints.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path / "store root")

        def leave_partial(self, store, key):   # optional: see test_list_excludes_partial_objects
            ...

pytest collects the inherited ``test_*`` methods in ``TestMyStore`` (see docs/checkpoints.md). Keys used here
are deliberately awkward (spaces, unicode, nested folders). Listing prefixes are ``""`` or a folder ending in
``/``; entries come back with exactly the keys they were written under.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('checkpoints.testing is a pytest suite: pip install "gpu-orchestrator[test]"') from exc

from checkpoints.store import CheckpointStore, StoreEntry
from orchestrator.core.atomic import atomic_write_bytes
from orchestrator.core.errors import StorageError

__all__ = ["AWKWARD_KEY", "StoreContract"]

AWKWARD_KEY = "run 1/ünïcödé ckpt/micro 300.weights"
MB = 1 << 20


def _pattern(size: int, seed: int) -> bytes:
    """Deterministic binary content (all 256 byte values) that differs per seed."""
    block = bytes((i * 31 + seed * 97) & 0xFF for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class StoreContract:
    """Shared behaviour of all backends. Subclasses supply the ``store`` fixture."""

    #: Size of the "few MB" objects; backends with slow fakes may lower it (keep it above one upload chunk).
    big_size: int = 3 * MB + 12345

    def leave_partial(self, store: CheckpointStore, key: str) -> None:
        """Leave the backend's own kind of incomplete object for ``key`` (a temp file, an unfinished upload).

        Backends override this; the default skips the test that needs it.
        """
        pytest.skip("backend does not describe how a partial object looks")

    def test_sweep_leftovers_removes_partials_and_keeps_published(self, store: CheckpointStore) -> None:
        store.write_bytes("sweep/kept.bin", b"complete")
        self.leave_partial(store, "sweep/half.bin")
        assert store.sweep_leftovers(older_than=-1.0) >= 1  # negative age: every partial, however young
        assert store.sweep_leftovers(older_than=-1.0) == 0
        assert store.read_bytes("sweep/kept.bin") == b"complete"
        assert store.stat("sweep/half.bin") is None

    # -- small objects -------------------------------------------------------------------------------------

    def test_write_bytes_read_bytes_roundtrip(self, store: CheckpointStore) -> None:
        entry = store.write_bytes("manifest.json", b'{"a": 1}\n')
        assert isinstance(entry, StoreEntry)
        assert entry.key == "manifest.json"
        assert entry.size == 9
        assert store.read_bytes("manifest.json") == b'{"a": 1}\n'

    def test_write_bytes_empty_object(self, store: CheckpointStore) -> None:
        store.write_bytes("empty/zero.bin", b"")
        assert store.read_bytes("empty/zero.bin") == b""
        entry = store.stat("empty/zero.bin")
        assert entry is not None and entry.size == 0

    def test_read_bytes_of_absent_key_raises_storage_error(self, store: CheckpointStore) -> None:
        with pytest.raises(StorageError):
            store.read_bytes("nope/missing.json")

    def test_stat_of_absent_key_is_none(self, store: CheckpointStore) -> None:
        assert store.stat("nope/missing.bin") is None
        store.write_bytes("there/a.bin", b"x")
        assert store.stat("there/b.bin") is None
        assert store.stat("there") is None  # a folder is not an object

    @pytest.mark.parametrize("bad", ["", "/abs/key", "../escape", "a/../b", "a//b", "a/./b", "trailing/"])
    def test_invalid_keys_are_rejected(self, store: CheckpointStore, bad: str, tmp_path: Path) -> None:
        with pytest.raises(StorageError):
            store.write_bytes(bad, b"x")
        with pytest.raises(StorageError):
            store.upload(_write(tmp_path / "src.bin", b"x"), bad)

    # -- big objects ---------------------------------------------------------------------------------------

    def test_upload_download_roundtrip_binary_awkward_key(self, store: CheckpointStore, tmp_path: Path) -> None:
        data = _pattern(self.big_size, seed=1)
        src = _write(tmp_path / "local dir ✓" / "src file.weights", data)
        before = time.time()
        entry = store.upload(src, AWKWARD_KEY)
        after = time.time()
        assert entry.key == AWKWARD_KEY
        assert entry.size == len(data)
        assert before - 300 <= entry.modified <= after + 300
        assert src.read_bytes() == data, "upload must not touch the source"

        dest = tmp_path / "restored dir ü" / "copy.weights"
        got = store.download(AWKWARD_KEY, dest)
        assert got.key == AWKWARD_KEY and got.size == len(data)
        assert dest.read_bytes() == data

    def test_stat_and_list_agree_with_upload(self, store: CheckpointStore, tmp_path: Path) -> None:
        src = _write(tmp_path / "a.bin", _pattern(100_000, seed=2))
        uploaded = store.upload(src, "ckpt/0001/a b.bin")
        stat = store.stat("ckpt/0001/a b.bin")
        assert stat is not None
        assert (stat.key, stat.size) == ("ckpt/0001/a b.bin", 100_000)
        assert abs(stat.modified - uploaded.modified) < 300
        (listed,) = store.list("ckpt/")
        assert (listed.key, listed.size) == ("ckpt/0001/a b.bin", 100_000)
        if uploaded.file_id is not None:
            assert stat.file_id == uploaded.file_id == listed.file_id

    def test_list_by_prefix_is_recursive_and_exact(self, store: CheckpointStore) -> None:
        keys = ["a/one.bin", "a/deep/two.bin", "a/deep/er/three.bin", "b/four.bin", "top.bin", "ab/five.bin"]
        for i, key in enumerate(keys):
            store.write_bytes(key, bytes([i]) * (i + 1))
        assert sorted(e.key for e in store.list("a/")) == ["a/deep/er/three.bin", "a/deep/two.bin", "a/one.bin"]
        assert sorted(e.key for e in store.list("a/deep/")) == ["a/deep/er/three.bin", "a/deep/two.bin"]
        assert sorted(e.key for e in store.list("")) == sorted(keys)
        assert store.list("zzz/") == []
        sizes = {e.key: e.size for e in store.list("")}
        assert sizes == {key: i + 1 for i, key in enumerate(keys)}

    def test_list_of_empty_store_is_empty(self, store: CheckpointStore) -> None:
        assert store.list("") == []

    def test_list_excludes_partial_objects(self, store: CheckpointStore) -> None:
        store.write_bytes("ckpt/done.bin", b"complete")
        self.leave_partial(store, "ckpt/in flight.bin")
        assert [e.key for e in store.list("ckpt/")] == ["ckpt/done.bin"]
        assert [e.key for e in store.list("")] == ["ckpt/done.bin"]
        assert store.stat("ckpt/in flight.bin") is None

    def test_upload_of_missing_source_raises_and_publishes_nothing(
        self, store: CheckpointStore, tmp_path: Path
    ) -> None:
        with pytest.raises(StorageError):
            store.upload(tmp_path / "does not exist.bin", "ckpt/x.bin")
        assert store.stat("ckpt/x.bin") is None
        assert store.list("") == []

    # -- overwrite / delete ---------------------------------------------------------------------------------

    def test_overwrite_replaces_content(self, store: CheckpointStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "v1", _pattern(200_000, 1)), "ckpt/last.weights")
        store.upload(_write(tmp_path / "v2", _pattern(150_000, 2)), "ckpt/last.weights")
        entry = store.stat("ckpt/last.weights")
        assert entry is not None and entry.size == 150_000
        assert store.read_bytes("ckpt/last.weights") == _pattern(150_000, 2)
        assert [e.key for e in store.list("ckpt/")] == ["ckpt/last.weights"]

    def test_overwrite_is_atomic_for_readers(self, store: CheckpointStore, tmp_path: Path) -> None:
        """While a writer replaces an object again and again, every read returns one complete version."""
        size = MB + 7
        versions = [_pattern(size, seed) for seed in range(6)]
        srcs = [_write(tmp_path / f"v{i}.bin", v) for i, v in enumerate(versions)]
        store.upload(srcs[0], "hot/obj.bin")
        valid = set(versions)
        seen: list[bytes] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def reader() -> None:
            try:
                while not done.is_set():
                    seen.append(store.read_bytes("hot/obj.bin"))
            except Exception as exc:  # noqa: BLE001 - surfaced in the main thread
                errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for round_ in range(3):
                for src in srcs[1:]:
                    store.upload(src, "hot/obj.bin")
        finally:
            done.set()
            thread.join(30)
        assert not errors, errors
        assert seen, "reader never completed a read"
        torn = [len(s) for s in seen if s not in valid]
        assert not torn, f"{len(torn)} of {len(seen)} reads saw a partial object (sizes {torn[:5]})"
        assert store.read_bytes("hot/obj.bin") == versions[-1]

    def test_delete_is_permanent(self, store: CheckpointStore, tmp_path: Path) -> None:
        store.upload(_write(tmp_path / "a", _pattern(50_000, 3)), "ckpt/old.weights")
        store.write_bytes("ckpt/keep.weights", b"keep")
        store.delete("ckpt/old.weights")
        assert store.stat("ckpt/old.weights") is None
        assert [e.key for e in store.list("")] == ["ckpt/keep.weights"]
        with pytest.raises(StorageError):
            store.read_bytes("ckpt/old.weights")
        with pytest.raises(StorageError):
            store.download("ckpt/old.weights", tmp_path / "out.bin")
        # the key can be used again afterwards
        store.write_bytes("ckpt/old.weights", b"again")
        assert store.read_bytes("ckpt/old.weights") == b"again"

    def test_delete_of_absent_key_is_fine(self, store: CheckpointStore) -> None:
        store.delete("never/was.bin")
        store.write_bytes("x.bin", b"1")
        store.delete("x.bin")
        store.delete("x.bin")
        assert store.list("") == []

    # -- download ------------------------------------------------------------------------------------------

    def test_download_of_absent_key_raises_and_leaves_dest_alone(self, store: CheckpointStore, tmp_path: Path) -> None:
        dest = _write(tmp_path / "dl" / "existing.weights", b"old local copy")
        with pytest.raises(StorageError):
            store.download("nope.weights", dest)
        assert dest.read_bytes() == b"old local copy"
        assert sorted(os.listdir(dest.parent)) == ["existing.weights"]
        fresh = tmp_path / "dl2" / "fresh.weights"
        with pytest.raises(StorageError):
            store.download("nope.weights", fresh)
        assert not fresh.exists()

    def test_download_replaces_dest_atomically(self, store: CheckpointStore, tmp_path: Path) -> None:
        """A poller of the destination sees the old file or the complete new one, never a partial one."""
        old = _pattern(300_000, 4)
        new = _pattern(self.big_size, 5)
        store.upload(_write(tmp_path / "src.bin", new), "ckpt/big.weights")
        dest = _write(tmp_path / "dl" / "big.weights", old)
        sizes: set[int] = set()
        done = threading.Event()

        def poller() -> None:
            while not done.is_set():
                try:
                    sizes.add(os.stat(dest).st_size)
                except FileNotFoundError:
                    sizes.add(-1)

        thread = threading.Thread(target=poller)
        thread.start()
        try:
            for _ in range(3):
                store.download("ckpt/big.weights", dest)
                atomic_write_bytes(dest, old)
        finally:
            done.set()
            thread.join(30)
        store.download("ckpt/big.weights", dest)
        assert dest.read_bytes() == new
        assert sizes <= {len(old), len(new)}, f"poller saw partial sizes {sorted(sizes)}"
        assert sorted(os.listdir(dest.parent)) == ["big.weights"], "download left temp files behind"
