from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from checkpoints.manifest import (
    MANIFEST_KEY,
    MANIFEST_PREV_KEY,
    Manifest,
    ManifestStore,
    checkpoint_key,
    store_holds,
)
from checkpoints.memory_store import MemoryStore
from checkpoints.path_store import PathStore
from checkpoints.store import StoreEntry
from orchestrator.core.errors import StateError, StorageError


def _src(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "work dir ü" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_publish_records_after_verified_upload(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "store")
    manifests = ManifestStore(store, session="s1", clock=lambda: 1000.0)
    data = b"weights" * 5000
    record = manifests.publish(_src(tmp_path, "micro 1.backup", data), "micro 1.backup", counter=100)
    assert record.size == len(data) and record.sha256 == hashlib.sha256(data).hexdigest()
    assert (record.counter, record.session, record.created) == (100, "s1", 1000.0)
    assert store.read_bytes(record.key) == data
    loaded = ManifestStore(store).load()
    assert loaded.records == (record,)


def test_keys_are_unique_and_fan_out(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "store", max_entries_per_folder=4)
    manifests = ManifestStore(store)
    src = _src(tmp_path, "micro.backup", b"x")
    keys = [manifests.publish(src, "micro.backup", counter=i).key for i in range(10)]
    assert len(set(keys)) == 10
    folders: dict[str, int] = {}
    for key in keys:
        folder = key.rsplit("/", 1)[0]
        folders[folder] = folders.get(folder, 0) + 1
    assert max(folders.values()) <= 3  # limit 4, one slot kept for a temp file
    assert len(folders) >= 3
    assert checkpoint_key("a.weights", 5, 1000) == "checkpoints/00000/00000005-a.weights"
    with pytest.raises(ValueError):
        checkpoint_key("../a", 1, 1000)


class ShortStore(MemoryStore):
    """A backend that silently stores a truncated object (a dropped connection the client missed)."""

    def upload(self, src: Path, key: str) -> StoreEntry:
        entry = super().upload(src, key)
        data, modified = self._objects[key]
        self._objects[key] = (data[: len(data) // 2], modified)
        return entry


def test_failed_verification_keeps_the_object_out_of_the_manifest(tmp_path: Path) -> None:
    store = ShortStore()
    manifests = ManifestStore(store)
    with pytest.raises(StorageError, match="failed verification"):
        manifests.publish(_src(tmp_path, "a.weights", b"y" * 1000), "a.weights", counter=1)
    assert manifests.load().records == ()
    assert [e.key for e in store.list("checkpoints/")] == [], "the bad object is deleted"


def test_readback_hash_catches_corruption_in_path_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PathStore(tmp_path / "store")
    real_upload = PathStore.upload

    def corrupting_upload(self: PathStore, src: Path, key: str) -> StoreEntry:
        entry = real_upload(self, src, key)
        path = self.local_path(key)
        assert path is not None
        raw = bytearray(path.read_bytes())
        raw[10] ^= 0xFF
        path.write_bytes(bytes(raw))
        return entry

    monkeypatch.setattr(PathStore, "upload", corrupting_upload)
    manifests = ManifestStore(store)
    with pytest.raises(StorageError, match="sha256"):
        manifests.publish(_src(tmp_path, "a.weights", bytes(range(256)) * 8), "a.weights", counter=1)
    assert manifests.load().records == ()


def test_upload_failure_leaves_manifest_unchanged(tmp_path: Path) -> None:
    store = MemoryStore()
    manifests = ManifestStore(store)
    first = manifests.publish(_src(tmp_path, "a.weights", b"1"), "a.weights", counter=1)
    store.fail_next["upload"] = StorageError("connection dropped")
    with pytest.raises(StorageError):
        manifests.publish(_src(tmp_path, "a.weights", b"2"), "a.weights", counter=2)
    assert manifests.load().records == (first,)
    third = manifests.publish(_src(tmp_path, "a.weights", b"3"), "a.weights", counter=3)
    assert third.key != first.key


def test_torn_manifest_falls_back_to_previous(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "store")
    manifests = ManifestStore(store)
    src = _src(tmp_path, "a.weights", b"data")
    one = manifests.publish(src, "a.weights", counter=1)
    manifests.publish(src, "a.weights", counter=2)
    raw = store.read_bytes(MANIFEST_KEY)
    store.write_bytes(MANIFEST_KEY, raw[: len(raw) // 2])  # a non-atomic mount cut the write
    recovered = ManifestStore(store).load()
    assert one in recovered.records
    assert store.stat(MANIFEST_PREV_KEY) is not None


def test_second_writer_is_detected(tmp_path: Path) -> None:
    store = MemoryStore()
    a, b = ManifestStore(store, session="a"), ManifestStore(store, session="b")
    src = _src(tmp_path, "a.weights", b"x")
    a.publish(src, "a.weights", counter=1)
    b.publish(src, "a.weights", counter=2)
    with pytest.raises(StateError, match="another session"):
        a.publish(src, "a.weights", counter=3)


def test_newest_first_orders_by_counter_not_time(tmp_path: Path) -> None:
    times = iter([300.0, 200.0, 100.0, 50.0])
    manifests = ManifestStore(MemoryStore(), clock=lambda: next(times))
    src = _src(tmp_path, "a.weights", b"x")
    for counter in (100, 300, None, 200):
        manifests.publish(src, "a.weights", counter=counter)
    assert [r.counter for r in manifests.load().newest_first()] == [300, 200, 100, None]


def test_roundtrip_and_tags(tmp_path: Path) -> None:
    manifests = ManifestStore(MemoryStore())
    rec = manifests.publish(_src(tmp_path, "f.weights", b"z"), "f.weights", counter=9, tags=("final",))
    manifests.tag(rec.key, "best")
    loaded = manifests.load()
    assert loaded.get(rec.key).tags == ("best", "final")  # type: ignore[union-attr]
    assert Manifest.from_bytes(loaded.to_bytes()) == loaded
    with pytest.raises(ValueError, match="unknown checkpoint tags"):
        manifests.publish(_src(tmp_path, "f.weights", b"z"), "f.weights", counter=9, tags=("bset",))


def test_store_holds_checks_the_object_not_the_record(tmp_path: Path) -> None:
    """A record counts as held only while its object is in the store with its size; a listing that lags (the
    Drive API's) is completed by a stat of the key it lacks."""
    store = PathStore(tmp_path / "store")
    manifests = ManifestStore(store)
    record = manifests.publish(_src(tmp_path, "a.weights", b"w" * 100), "a.weights", counter=1)
    assert store_holds(store, record)
    assert store_holds(store, record, listed={})  # not listed yet: the stat finds it
    path = store.local_path(record.key)
    assert path is not None
    path.write_bytes(b"w" * 40)  # a torn upload: another size
    assert not store_holds(store, record)
    assert store_holds(store, record, listed={record.key: 100})  # a listing with its size is taken as it is
    path.unlink()  # the object never arrived
    assert not store_holds(store, record)


def test_publish_all_records_every_file_and_drops_the_old_in_one_revision(tmp_path: Path) -> None:
    store = MemoryStore()
    manifests = ManifestStore(store)
    chunks = [manifests.publish(_src(tmp_path, f"c{i}.chunk", b"c%d" % i), f"c{i}.chunk", counter=i, retain=False)
              for i in range(3)]
    before = manifests.load().revision
    files = [(_src(tmp_path, name, data), name, ("final",)) for name, data in
             (("clip.detections.jsonl", b"{}\n"), ("clip.summary.json", b'{"status": "done"}'))]
    records = manifests.publish_all(files, forget={c.key for c in chunks})
    after = ManifestStore(store).load()
    assert after.revision == before + 1  # one manifest write: a reader sees the chunks or the outputs
    assert [r.name for r in after.records] == ["clip.detections.jsonl", "clip.summary.json"]
    assert all(store.read_bytes(r.key) == f[0].read_bytes() and r.tags == ("final",) for r, f in zip(records, files))


def test_publish_all_with_a_failed_upload_leaves_the_manifest_unchanged(tmp_path: Path) -> None:
    store = MemoryStore()
    manifests = ManifestStore(store)
    chunk = manifests.publish(_src(tmp_path, "c0.chunk", b"c"), "c0.chunk", counter=0, retain=False)
    before = manifests.load()
    files = [(_src(tmp_path, "a.jsonl", b"a"), "a.jsonl", ("final",)), (_src(tmp_path, "b.json", b"b"), "b.json", ())]
    uploads = store.upload_with_labels

    def second_fails(src: Path, key: str, labels: dict[str, str]) -> StoreEntry:
        if key.endswith("b.json"):
            raise StorageError("connection dropped")
        return uploads(src, key, labels)

    store.upload_with_labels = second_fails  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="connection dropped"):
        manifests.publish_all(files, forget={chunk.key})
    assert ManifestStore(store).load().records == before.records


def test_publish_all_uploads_the_files_at_once(tmp_path: Path) -> None:
    """On the Drive mount an upload is mostly waiting on round trips: an input's outputs go up together (each
    upload here waits for the other to start; one after the other, the barrier would time out)."""
    import threading

    store = MemoryStore()
    manifests = ManifestStore(store)
    both = threading.Barrier(2, timeout=10)
    uploads = store.upload_with_labels

    def waits_for_the_other(src: Path, key: str, labels: dict[str, str]) -> StoreEntry:
        both.wait()
        return uploads(src, key, labels)

    store.upload_with_labels = waits_for_the_other  # type: ignore[method-assign]
    files = [(_src(tmp_path, n, n.encode()), n, ("final",)) for n in ("clip.annotated.mp4", "clip.detections.jsonl")]
    records = manifests.publish_all(files)
    assert [r.name for r in records] == ["clip.annotated.mp4", "clip.detections.jsonl"]  # in the order given
    stored = ManifestStore(store).load().records  # in sequence order: the uploads reserved theirs at once
    assert sorted(r.name for r in stored) == sorted(r.name for r in records)
