from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from checkpoints.discovery import find_latest_checkpoint
from checkpoints.manifest import Manifest
from checkpoints.validators import Verdict
from jobs.darknet.cfg import load_cfg
from jobs.darknet.weights import (
    DarknetWeightsValidator,
    header_bytes_for,
    iteration_from_seen,
    parse_header,
    read_header,
)

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "darknet"
PJ = FIXTURES / "pjreddie"
AB = FIXTURES / "alexeyab"


@pytest.fixture(scope="module")
def validator() -> DarknetWeightsValidator:
    return DarknetWeightsValidator(load_cfg(FIXTURES / "micro.cfg"))


def test_headers_of_real_files() -> None:
    pj = read_header(PJ / "micro_100.weights")
    assert pj is not None and pj.version == "0.2.0" and pj.seen == 400 and pj.size == 20
    ab = read_header(AB / "micro_last.weights")
    assert ab is not None and ab.version == "0.2.5" and ab.seen == 800


def test_old_header_has_32_bit_seen() -> None:
    header = parse_header(header_bytes_for(0, 1, 0, 1234) + b"\0" * 8)
    assert header is not None and header.size == 16 and header.seen == 1234
    assert parse_header(b"\0" * 10) is None


def test_iteration_from_seen_uses_the_cfg_batch() -> None:
    cfg = load_cfg(FIXTURES / "micro.cfg")  # batch=4, subdivisions=1
    assert iteration_from_seen(400, cfg) == 100
    assert iteration_from_seen(1003, cfg) == 250


@pytest.mark.parametrize(
    ("path", "iteration"),
    [
        (PJ / "micro_100.weights", 100),
        (PJ / "micro_200.weights", 200),
        (PJ / "micro.backup", 200),
        (PJ / "micro_final.weights", 250),
        (AB / "lowlr" / "micro_lowlr_final.weights", 250),
    ],
)
def test_real_weights_are_valid_with_their_iteration(validator: DarknetWeightsValidator, path: Path, iteration: int) -> None:
    assert validator.validate(path) == Verdict(True, counter=iteration)


def test_shared_discovery_with_it_resumes_from_the_newest_intact_weights(validator: DarknetWeightsValidator,
                                                                        tmp_path: Path) -> None:
    """Plugged into checkpoints.discovery: header counters rank the files, a torn newer backup is passed over."""
    backup = tmp_path / "backup ü"
    backup.mkdir()
    shutil.copy(PJ / "micro_100.weights", backup / "micro_100.weights")
    shutil.copy(PJ / "micro.backup.truncated", backup / "micro.backup")  # header says 200, body cut short
    (backup / "micro_300.weights").write_bytes(header_bytes_for(0, 2, 0, 1200))  # a header and nothing else
    choice = find_latest_checkpoint(None, Manifest(), local_dir=backup, validator=validator)
    assert choice.chosen is not None
    assert (choice.chosen.name, choice.chosen.counter) == ("micro_100.weights", 100)
    skipped = {judged.candidate.name: (judged.candidate.counter, judged.reason) for judged in choice.skipped}
    assert skipped.keys() == {"micro_300.weights", "micro.backup"}
    assert skipped["micro_300.weights"][0] == 300 and skipped["micro.backup"][0] == 200
    assert "truncated" in skipped["micro.backup"][1] and "20,000 bytes" in skipped["micro.backup"][1]


def test_truncated_backup_from_a_disconnect_is_rejected(validator: DarknetWeightsValidator) -> None:
    verdict = validator.validate(PJ / "micro.backup.truncated")
    assert not verdict.ok
    assert "truncated" in verdict.reason and "20,000 bytes" in verdict.reason and "248,196" in verdict.reason
    assert verdict.counter == 200  # from its intact header: discovery ranks it, then skips it with the reason


def test_diverged_weights_full_of_nan_are_rejected(validator: DarknetWeightsValidator) -> None:
    verdict = validator.validate(AB / "micro_last.weights")  # the real run went nan at iteration 129
    assert not verdict.ok and "NaN" in verdict.reason and verdict.counter == 200
    assert DarknetWeightsValidator(validator.cfg, check_values=False).validate(AB / "micro_last.weights").ok


def test_padded_zero_byte_html_and_missing_files(validator: DarknetWeightsValidator, tmp_path: Path) -> None:
    folder = tmp_path / "dir with spaces ü"
    folder.mkdir()
    padded = folder / "micro.backup"
    shutil.copy(PJ / "micro.backup", padded)
    with open(padded, "ab") as fh:
        fh.write(b"\0" * 4)
    verdict = validator.validate(padded)
    assert not verdict.ok and "different cfg" in verdict.reason

    empty = folder / "empty.weights"
    empty.write_bytes(b"")
    assert "empty" in validator.validate(empty).reason

    page = folder / "yolov3.weights"
    page.write_bytes(b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    assert "HTML" in validator.validate(page).reason

    tiny = folder / "tiny.weights"
    tiny.write_bytes(b"\0\0\0\0\2\0")
    assert "too short" in validator.validate(tiny).reason

    assert "does not exist" in validator.validate(folder / "nope.weights").reason


def test_weights_of_another_cfg_are_rejected(tmp_path: Path) -> None:
    other = load_cfg(FIXTURES / "cfg" / "yolov3-tiny.cfg")
    verdict = DarknetWeightsValidator(other).validate(PJ / "micro_final.weights")
    assert not verdict.ok and "truncated" in verdict.reason


def test_garbage_header_is_rejected(validator: DarknetWeightsValidator, tmp_path: Path) -> None:
    junk = tmp_path / "junk.weights"
    junk.write_bytes(b"\xff" * 248_196)
    assert "no darknet weights header" in validator.validate(junk).reason


def test_pretrained_check_accepts_partial_and_refuses_cut_or_foreign_files(tmp_path: Path) -> None:
    from jobs.darknet.weights import check_pretrained
    from orchestrator.core.errors import ConfigError

    cfg = load_cfg(FIXTURES / "micro.cfg")
    partial = tmp_path / "micro.conv.4"
    partial.write_bytes((PJ / "micro_100.weights").read_bytes()[: 20 + 4 * 1000])  # first layers only
    check_pretrained(partial, cfg)
    check_pretrained(PJ / "micro_100.weights", cfg)
    cut = tmp_path / "cut.weights"
    cut.write_bytes((PJ / "micro_100.weights").read_bytes()[:1003])
    with pytest.raises(ConfigError, match="cut off"):
        check_pretrained(cut, cfg)
    junk = tmp_path / "junk.weights"
    junk.write_bytes(b"\xff" * 400)
    with pytest.raises(ConfigError, match="no darknet header"):
        check_pretrained(junk, cfg)
