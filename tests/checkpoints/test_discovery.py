from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from checkpoints.discovery import checkpoint_rows, counter_from_name, find_latest_checkpoint, format_rows, judge_all
from checkpoints.manifest import ManifestStore
from checkpoints.memory_store import MemoryStore
from checkpoints.path_store import PathStore
from checkpoints.restore import prepare_resume, restore_checkpoint
from orchestrator.core.errors import CheckpointError
from tests.checkpoints.darknet_like import FIXTURES, MicroWeightsValidator

PJ = FIXTURES / "pjreddie"
HTML = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>\n" * 20


@pytest.fixture
def store(tmp_path: Path) -> PathStore:
    return PathStore(tmp_path / "drive ✓" / "store")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work dir" / "backup"
    path.mkdir(parents=True)
    return path


def _publish(store: PathStore, name: str, src: Path, counter: int) -> None:
    ManifestStore(store).publish(src, name, counter=counter)


def test_bad_newer_checkpoints_are_skipped_with_reasons(
    store: PathStore, work: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _publish(store, "micro_100.weights", PJ / "micro_100.weights", 100)
    _publish(store, "micro_200.weights", PJ / "micro_200.weights", 200)
    shutil.copy(PJ / "micro.backup.truncated", work / "micro_300.weights")  # cut off mid-write
    (work / "micro_400.weights").write_bytes(b"")  # zero bytes
    (work / "micro_500.weights").write_bytes(HTML)  # an error page saved as weights
    manifest = ManifestStore(store).load()

    with caplog.at_level(logging.INFO):
        choice = find_latest_checkpoint(store, manifest, work, validator=MicroWeightsValidator())

    assert choice.chosen is not None
    assert (choice.chosen.name, choice.chosen.where, choice.chosen.counter) == ("micro_200.weights", "store", 200)
    reasons = {j.candidate.name: j.reason for j in choice.skipped}
    assert set(reasons) == {"micro_300.weights", "micro_400.weights", "micro_500.weights"}
    assert "20000 bytes" in reasons["micro_300.weights"] and "truncated" in reasons["micro_300.weights"]
    assert "empty (0 bytes)" in reasons["micro_400.weights"]
    assert "HTML page" in reasons["micro_500.weights"]
    skip_lines = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skip_lines) == 3
    for name, reason in reasons.items():
        assert any(name in line and reason in line for line in skip_lines), name
    assert any("using micro_200.weights" in r.getMessage() for r in caplog.records)


def test_orders_by_counter_not_mtime(store: PathStore, work: Path) -> None:
    _publish(store, "micro_200.weights", PJ / "micro_200.weights", 200)
    shutil.copy(PJ / "micro_100.weights", work / "micro_100.weights")
    os.utime(work / "micro_100.weights")  # youngest file, oldest progress
    choice = find_latest_checkpoint(store, ManifestStore(store).load(), work, validator=MicroWeightsValidator())
    assert choice.chosen is not None and choice.chosen.counter == 200 and choice.skipped == ()


def test_counter_comes_from_the_file_when_the_name_has_none(work: Path) -> None:
    shutil.copy(PJ / "micro.backup", work / "micro.backup")  # iteration 200 inside
    shutil.copy(PJ / "micro_100.weights", work / "micro_100.weights")
    choice = find_latest_checkpoint(None, ManifestStore(MemoryStore()).load(), work, validator=MicroWeightsValidator())
    assert choice.chosen is not None and (choice.chosen.name, choice.chosen.counter) == ("micro.backup", 200)


def test_store_object_missing_or_resized_is_skipped(store: PathStore, work: Path) -> None:
    _publish(store, "micro_100.weights", PJ / "micro_100.weights", 100)
    _publish(store, "micro_200.weights", PJ / "micro_200.weights", 200)
    _publish(store, "micro_final.weights", PJ / "micro_final.weights", 250)
    manifest = ManifestStore(store).load()
    by_counter = {r.counter: r for r in manifest.records}
    store.delete(by_counter[250].key)
    path = store.local_path(by_counter[200].key)
    assert path is not None
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    choice = find_latest_checkpoint(store, manifest, work, validator=MicroWeightsValidator())
    assert choice.chosen is not None and choice.chosen.counter == 100
    reasons = [j.reason for j in choice.skipped]
    assert "missing from the store" in reasons[0]
    assert "1000 bytes in the store" in reasons[1]


def test_nothing_valid_means_start_from_scratch(work: Path) -> None:
    (work / "a_1.weights").write_bytes(b"")
    choice = find_latest_checkpoint(None, ManifestStore(MemoryStore()).load(), work)
    assert choice.chosen is None and len(choice.skipped) == 1
    assert "scratch" in choice.describe()


def test_prepare_resume_restores_and_falls_back_on_bad_hash(store: PathStore, work: Path) -> None:
    _publish(store, "micro_100.weights", PJ / "micro_100.weights", 100)
    _publish(store, "micro_200.weights", PJ / "micro_200.weights", 200)
    manifest = ManifestStore(store).load()
    newest = max(manifest.records, key=lambda r: r.counter or 0)
    path = store.local_path(newest.key)
    assert path is not None
    raw = bytearray(path.read_bytes())
    raw[5000] ^= 0x55  # same size, format still plausible: only the sha256 can tell
    path.write_bytes(bytes(raw))

    point = prepare_resume(store, manifest, work, validator=MicroWeightsValidator())
    assert point is not None and point.restored
    assert point.candidate.counter == 100
    assert point.path == work / "micro_100.weights"
    assert point.path.read_bytes() == (PJ / "micro_100.weights").read_bytes()
    assert "sha256" in point.choice.skipped[0].reason
    assert sorted(p.name for p in work.iterdir()) == ["micro_100.weights"], "no staging leftovers"

    # the next resume on this machine uses the local copy without downloading again
    again = prepare_resume(store, manifest, work, validator=MicroWeightsValidator())
    assert again is not None and not again.restored and again.candidate.where == "local"


def test_failed_restore_keeps_the_previous_local_file(store: PathStore, tmp_path: Path) -> None:
    _publish(store, "micro_200.weights", PJ / "micro_200.weights", 200)
    record = ManifestStore(store).load().records[0]
    path = store.local_path(record.key)
    assert path is not None
    path.write_bytes(HTML[: record.size] + b"\0" * max(0, record.size - len(HTML)))
    dest = tmp_path / "local" / "micro_200.weights"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")
    with pytest.raises(CheckpointError, match="not valid"):
        restore_checkpoint(store, record, dest, MicroWeightsValidator())
    assert dest.read_bytes() == b"previous"
    assert os.listdir(dest.parent) == ["micro_200.weights"]


def test_listing_rows(store: PathStore, work: Path) -> None:
    _publish(store, "micro_100.weights", PJ / "micro_100.weights", 100)
    (work / "micro_300.weights").write_bytes(HTML)
    judged = judge_all(store, ManifestStore(store).load(), work, validator=MicroWeightsValidator())
    now = max(j.candidate.modified for j in judged) + 7200
    rows = checkpoint_rows(judged, now=now)
    assert [(r.name, r.counter, r.where, r.valid, r.resume) for r in rows] == [
        ("micro_300.weights", 300, "local", False, False),
        ("micro_100.weights", 100, "store", True, True),
    ]
    assert "HTML" in rows[0].reason and rows[1].size == 248_196
    assert rows[1].age_seconds >= 7200
    text = format_rows(rows)
    assert "* micro_100.weights" in text and "invalid: " in text and "242.4 KB" in text


def test_counter_from_name() -> None:
    assert counter_from_name("micro_300.weights") == 300
    assert counter_from_name("yolov4-custom_12000.weights") == 12000
    assert counter_from_name("micro.backup") is None
    assert counter_from_name("micro_last.weights") is None
