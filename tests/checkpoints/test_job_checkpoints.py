from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from checkpoints.job_checkpoints import JobCheckpoints, rows_as_json
from orchestrator.core.errors import CheckpointError
from orchestrator.core.paths import JobPaths
from orchestrator.core.store_spec import PathStoreSpec, RetentionSpec
from tests.checkpoints.darknet_like import FIXTURES, MicroWeightsValidator

PJ = FIXTURES / "pjreddie"


def _open(tmp_path: Path, machine: str) -> JobCheckpoints:
    paths = JobPaths(home=tmp_path / "drive" / "job", local=tmp_path / machine / "job")
    return JobCheckpoints.open(
        PathStoreSpec(),
        RetentionSpec(keep_last=1),
        paths,
        session_id=machine,
        output_dir=paths.work / "backup",
        patterns=("*.weights", "*.backup"),
        validator=MicroWeightsValidator(),
    )


def test_sync_retain_publish_final_resume_and_list(tmp_path: Path) -> None:
    first = _open(tmp_path, "machine-1")
    assert first.resume() is None
    first.output_dir.mkdir(parents=True)
    reported: list[tuple[str, int | None]] = []
    first.start_sync(on_published=lambda r: reported.append((r.name, r.counter)), poll_interval=0.05)
    with pytest.raises(CheckpointError, match="already running"):
        first.start_sync()
    for name in ("micro_100.weights", "micro_200.weights"):
        shutil.copy(PJ / name, first.output_dir / name)
        assert first._sync is not None and first._sync.flush(timeout=20)
    assert first.sync_status() is not None
    assert first.stop_sync(flush_timeout=20)
    assert reported == [("micro_100.weights", 100), ("micro_200.weights", 200)]

    final = first.output_dir / "micro_final.weights"
    shutil.copy(PJ / "micro_final.weights", final)
    record = first.publish(final, counter=250, tags=("final",))
    assert record.tags == ("final",) and record.counter == 250  # the file says 250 too (seen 1000 / 4)
    bad = first.output_dir / "broken.weights"
    bad.write_bytes(b"<html>502</html>")
    with pytest.raises(CheckpointError, match="HTML"):
        first.publish(bad, counter=999)

    # keep_last=1 dropped micro_100 once micro_200 was recorded
    names = sorted(r.name for r in first.manifests.load().records)
    assert names == ["micro_200.weights", "micro_final.weights"]

    second = _open(tmp_path, "machine-2")
    point = second.resume()
    assert point is not None and point.restored and point.candidate.name == "micro_final.weights"
    rows = second.rows()
    assert [(r.name, r.where, r.resume) for r in rows][:2] == [
        ("micro_final.weights", "local", True),
        ("micro_final.weights", "store", False),
    ]
    assert json.loads(json.dumps(rows_as_json(rows)))[0]["name"] == "micro_final.weights"
