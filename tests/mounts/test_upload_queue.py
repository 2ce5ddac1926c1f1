"""The lazy-upload queue on its own: per-path order kept, unrelated paths reordered (seeded), drop loses the rest."""

from __future__ import annotations

from pathlib import Path

from tests.mounts.upload_queue import UploadQueue


def _blob(tmp: Path, name: str, text: str) -> str:
    path = tmp / "blobs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return str(path)


def _upload_order(seed: int, tmp: Path) -> list[str]:
    """The order in which eight independent files reach the backing folder under ``seed``."""
    backing = tmp / f"drive-{seed}-{len(list(tmp.iterdir()))}"
    backing.mkdir()
    queue = UploadQueue(backing, seed=seed)
    for i in range(8):
        queue.add("put", f"f{i}", blob=_blob(tmp, f"{backing.name}-{i}", str(i)))
    order: list[str] = []
    while queue.pending:
        before = {op.path for op in queue.pending}
        queue.pump(1)
        order.extend(before - {op.path for op in queue.pending})
    return order


def test_unrelated_paths_are_reordered_reproducibly(tmp_path: Path) -> None:
    first, again, other = _upload_order(1, tmp_path), _upload_order(1, tmp_path), _upload_order(2, tmp_path)
    assert sorted(first) == [f"f{i}" for i in range(8)]
    assert first == again
    assert first != other
    assert first != sorted(first)


def test_one_path_keeps_its_order_and_folders_come_first(tmp_path: Path) -> None:
    backing = tmp_path / "drive"
    backing.mkdir()
    for seed in range(20):
        queue = UploadQueue(backing, seed=seed)
        queue.add("mkdir", "run")
        queue.add("put", "run/state.json", blob=_blob(tmp_path, f"a{seed}", "one"))
        queue.add("put", "other.txt", blob=_blob(tmp_path, f"o{seed}", "other"))
        queue.add("put", "run/state.json", blob=_blob(tmp_path, f"b{seed}", "two"))
        queue.add("rename", "run/state.json", target="run/state.old")
        queue.drain()
        assert (backing / "run" / "state.old").read_text() == "two"
        assert not (backing / "run" / "state.json").exists()


def test_drop_loses_what_was_not_uploaded(tmp_path: Path) -> None:
    backing = tmp_path / "drive"
    backing.mkdir()
    queue = UploadQueue(backing, seed=0)
    queue.add("put", "a", blob=_blob(tmp_path, "a", "A"))
    queue.add("put", "b", blob=_blob(tmp_path, "b", "B"))
    assert queue.pump(1) == 1
    assert queue.drop() == 1
    assert len(list(backing.iterdir())) == 1
