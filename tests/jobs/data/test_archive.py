"""Safe archive staging: good zip/tar/tar.gz extracted, bad members refused with nothing written outside."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from jobs.data import ExtractLimits, archive_signature, extract_archive, stage_archive
from orchestrator.core.errors import ConfigError
from tests.jobs.data.archives import archive_folder, malicious, tar_member, tar_with, zip_with

BAD_KINDS = ["escape", "absolute", "symlink_out", "device"]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "dätä set"
    for sub in ("a", "a/b", "c"):
        (src / sub).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            (src / sub / f"img {i}.jpg").write_bytes(f"{sub}-{i}".encode() * 50)
    return src


@pytest.mark.parametrize("name", ["d.zip", "d.tar", "d.tar.gz", "d.tgz"])
def test_every_format_extracts_the_same_tree(source: Path, tmp_path: Path, name: str) -> None:
    archive = archive_folder(source, tmp_path / name, top="top/")
    files, size = extract_archive(archive, tmp_path / "out")
    assert _tree(tmp_path / "out" / "top") == _tree(source)
    assert files == 9 and size == sum(len(v) for v in _tree(source).values())


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_malicious_member_is_refused_and_nothing_is_left(tmp_path: Path, fmt: str, kind: str) -> None:
    work = tmp_path / "deep" / "er"
    work.mkdir(parents=True)
    archive = malicious(kind, fmt, work)
    stage = work / "stage"
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError) as info:
        stage_archive(archive, stage)
    assert "refused" in str(info.value) and archive.name in str(info.value)
    after = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if "stage" not in p.parts)
    assert after == before
    assert not any(p.name == "evil.txt" for p in Path("/").glob("*"))
    assert list(stage.iterdir()) == []


def test_links_inside_the_folder_are_kept(tmp_path: Path) -> None:
    archive = tar_with(tmp_path / "ok.tar", [
        (tar_member("d/a.txt"), b"A"),
        (tar_member("d/sub/link", tarfile.SYMTYPE, "../a.txt"), None),
        (tar_member("d/hard", tarfile.LNKTYPE, "d/a.txt"), None),
    ])
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "sub" / "link").read_bytes() == b"A"
    assert (tmp_path / "out" / "d" / "hard").read_bytes() == b"A"


def test_size_bound_is_checked_before_a_zip_writes_anything(tmp_path: Path) -> None:
    archive = zip_with(tmp_path / "big.zip", {"a": b"x" * 1000, "b": b"y" * 1000})
    with pytest.raises(ConfigError, match="bound of 1500 bytes"):
        extract_archive(archive, tmp_path / "out", ExtractLimits(max_bytes=1500))
    assert not (tmp_path / "out").exists()


def test_staging_happens_once_and_again_when_the_archive_changes(source: Path, tmp_path: Path) -> None:
    archive = archive_folder(source, tmp_path / "d.zip")
    first = stage_archive(archive, tmp_path / "stage")
    again = stage_archive(archive, tmp_path / "stage")
    assert not first.reused and again.reused and again.root == first.root
    (source / "a" / "new.jpg").write_bytes(b"new")
    archive_folder(source, archive)
    changed = stage_archive(archive, tmp_path / "stage")
    assert not changed.reused and changed.signature != first.signature
    assert (changed.root / "a" / "new.jpg").read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path / "stage")) == sorted([changed.signature, f"{changed.signature}.json"])


def test_a_killed_staging_is_redone_not_used(source: Path, tmp_path: Path) -> None:
    archive = archive_folder(source, tmp_path / "d.tar.gz")
    sig = archive_signature(archive)
    partial = tmp_path / "stage" / f".{sig}.partial"
    partial.mkdir(parents=True)
    (partial / "half.jpg").write_bytes(b"torn")
    staged = stage_archive(archive, tmp_path / "stage")
    assert not staged.reused and _tree(staged.root) == _tree(source)
    assert not partial.exists()


def test_a_corrupt_archive_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "d.tar.gz"
    bad.write_bytes(b"not gzip at all" * 10)
    with pytest.raises(ConfigError, match="not a readable tar"):
        stage_archive(bad, tmp_path / "stage")
