from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.atomic import atomic_open, atomic_write_bytes


def test_failed_write_leaves_the_old_content_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "dir ü" / "state.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_new_content_appears_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    with atomic_open(target) as fh:
        fh.write(b"x" * 1000)
        assert not target.exists()  # invisible until complete
    assert target.read_bytes() == b"x" * 1000
