from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from checkpoints.manifest import Manifest, ManifestRecord, ManifestStore, checkpoint_key
from checkpoints.memory_store import MemoryStore
from checkpoints.path_store import PathStore
from checkpoints.retention import RetentionSpec, apply_retention, plan_retention
from checkpoints.store import StoreEntry


def _manifest(counters: Sequence[int | None], tags: dict[int, tuple[str, ...]] | None = None) -> Manifest:
    manifest = Manifest()
    for seq, counter in enumerate(counters, start=1):
        manifest = manifest.add(
            ManifestRecord(
                name="m.weights",
                key=checkpoint_key("m.weights", seq, 1000),
                counter=counter,
                size=10,
                sha256="0" * 64,
                created=float(seq),
                tags=(tags or {}).get(seq, ()),
                seq=seq,
            )
        )
    return manifest


def _kept_counters(manifest: Manifest, policy: RetentionSpec) -> list[int | None]:
    plan = plan_retention(manifest, policy)
    return sorted((r.counter for r in manifest.records if r.key in plan.keep), key=lambda c: c or 0)


def test_keeps_newest_by_counter_not_publication_order() -> None:
    manifest = _manifest([500, 100, 400, 200, 300])
    assert _kept_counters(manifest, RetentionSpec(keep_last=2)) == [400, 500]


def test_milestones_final_and_best() -> None:
    counters = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1000]
    manifest = _manifest(counters, tags={3: ("best",), 1: ("final",)})
    plan = plan_retention(manifest, RetentionSpec(keep_last=2, milestone_every=400))
    kept = {manifest.get(k).seq: why for k, why in plan.keep.items()}  # type: ignore[union-attr]
    assert set(kept) == {11, 10, 8, 4, 3, 1}  # newest two, 800, 400 milestones, best, final
    assert "milestone" in kept[8] and "best" in kept[3] and "final" in kept[1]
    assert sorted(r.seq for r in plan.delete) == [2, 5, 6, 7, 9]
    no_tags = plan_retention(manifest, RetentionSpec(keep_last=2, keep_final=False, keep_best=False))
    assert {manifest.get(k).seq for k in no_tags.keep} == {10, 11}  # type: ignore[union-attr]


def test_milestone_keeps_only_newest_copy_of_a_counter() -> None:
    manifest = _manifest([400, 400, 900])
    plan = plan_retention(manifest, RetentionSpec(keep_last=1, milestone_every=400))
    assert sorted(manifest.get(k).seq for k in plan.keep) == [2, 3]  # type: ignore[union-attr]


def test_unknown_counters_are_oldest() -> None:
    assert _kept_counters(_manifest([None, 5, None, 7]), RetentionSpec(keep_last=2)) == [5, 7]


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        RetentionSpec(keep_last=0)
    with pytest.raises(ValueError):
        RetentionSpec(milestone_every=0)


def test_orphans_exclude_uploads_in_flight() -> None:
    manifest = _manifest([1, 2, 3])
    stored = [StoreEntry(r.key, 10, 0.0) for r in manifest.records]
    stored += [StoreEntry(checkpoint_key("m.weights", 2, 1000).replace("00000002", "00000001") + "x", 1, 0.0)]
    stored += [StoreEntry(checkpoint_key("m.weights", 9, 1000), 1, 0.0)]  # newer than any record: in flight
    plan = plan_retention(manifest, RetentionSpec(keep_last=3), stored)
    assert plan.delete == () and plan.orphans == (checkpoint_key("m.weights", 1, 1000) + "x",)


def _publish(manifests: ManifestStore, tmp_path: Path, counter: int) -> ManifestRecord:
    src = tmp_path / f"m_{counter}.weights"
    src.write_bytes(str(counter).encode() * 100)
    return manifests.publish(src, src.name, counter=counter)


def test_apply_deletes_records_then_objects(tmp_path: Path) -> None:
    store = PathStore(tmp_path / "store")
    manifests = ManifestStore(store)
    records = [_publish(manifests, tmp_path, c) for c in (100, 200, 300, 400)]
    plan = apply_retention(manifests, RetentionSpec(keep_last=2))
    assert [r.counter for r in plan.delete] == [200, 100]
    assert sorted(r.counter for r in manifests.load().records) == [300, 400]  # type: ignore[type-var]
    assert [e.key for e in store.list("checkpoints/")] == [records[2].key, records[3].key]


def test_apply_deletes_nothing_if_the_newest_is_not_in_the_store(tmp_path: Path) -> None:
    store = MemoryStore()
    manifests = ManifestStore(store)
    records = [_publish(manifests, tmp_path, c) for c in (1, 2, 3)]
    store.delete(records[-1].key)
    plan = apply_retention(manifests, RetentionSpec(keep_last=1))
    assert plan.delete == ()
    assert len(manifests.load().records) == 3
    assert store.stat(records[0].key) is not None


def test_interrupted_delete_leaves_orphan_swept_next_time(tmp_path: Path) -> None:
    store = MemoryStore()
    manifests = ManifestStore(store)
    records = [_publish(manifests, tmp_path, c) for c in (1, 2, 3)]
    manifests.forget({records[0].key})  # crash after the manifest update, before the object delete
    plan = apply_retention(manifests, RetentionSpec(keep_last=3))
    assert plan.orphans == (records[0].key,)
    assert store.stat(records[0].key) is None
