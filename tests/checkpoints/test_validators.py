from __future__ import annotations

import hashlib
from pathlib import Path

from checkpoints.validators import (
    AllOf,
    NonEmptyValidator,
    NotErrorPageValidator,
    RecordValidator,
    Verdict,
    file_sha256,
    generic_validator,
)

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


def test_non_empty(tmp_path: Path) -> None:
    empty = tmp_path / "e.weights"
    empty.write_bytes(b"")
    verdict = NonEmptyValidator().validate(empty)
    assert not verdict.ok and "empty (0 bytes)" in verdict.reason
    missing = NonEmptyValidator().validate(tmp_path / "missing.weights")
    assert not missing.ok and "does not exist" in missing.reason
    (tmp_path / "ok.weights").write_bytes(b"\0")
    assert NonEmptyValidator().validate(tmp_path / "ok.weights") == Verdict(True)


def test_error_pages_are_rejected(tmp_path: Path) -> None:
    pages = {
        "html.weights": b"\n  <!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>",
        "html2.weights": b"<html><body>Sign in</body></html>",
        "json.weights": b'{\n "error": {"code": 403, "message": "The download quota for this file has been exceeded"}}',
    }
    for name, body in pages.items():
        (tmp_path / name).write_bytes(body)
        verdict = NotErrorPageValidator().validate(tmp_path / name)
        assert not verdict.ok, name
        assert name in verdict.reason and "not a checkpoint" in verdict.reason


def test_binary_checkpoints_are_not_error_pages(tmp_path: Path) -> None:
    real = FIXTURES / "darknet" / "pjreddie" / "micro_100.weights"
    if real.exists():
        assert NotErrorPageValidator().validate(real).ok
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 10)
    assert NotErrorPageValidator().validate(tmp_path / "b.bin").ok
    (tmp_path / "j.json").write_bytes(b'{"iteration": 3}')
    assert NotErrorPageValidator().validate(tmp_path / "j.json").ok


def test_record_validator_size_and_hash(tmp_path: Path) -> None:
    data = b"checkpoint bytes" * 1000
    path = tmp_path / "c.bin"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    assert file_sha256(path) == digest
    assert RecordValidator(len(data), digest).validate(path).ok
    short = RecordValidator(len(data) + 1, digest).validate(path)
    assert not short.ok and "manifest records" in short.reason and str(len(data) + 1) in short.reason
    other = RecordValidator(len(data), "0" * 64).validate(path)
    assert not other.ok and "sha256" in other.reason


class CounterValidator:
    def validate(self, path: Path) -> Verdict:
        return Verdict(True, counter=int(path.read_bytes()[:3]))


def test_all_of_returns_first_failure_and_counter(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"300rest")
    assert generic_validator(CounterValidator()).validate(path) == Verdict(True, counter=300)
    empty = tmp_path / "y.bin"
    empty.write_bytes(b"")
    verdict = AllOf([NonEmptyValidator(), CounterValidator()]).validate(empty)
    assert not verdict.ok and "empty" in verdict.reason
