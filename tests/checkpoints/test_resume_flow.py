"""End to end: sync while training, retention on publish, the machine dies, a new machine resumes."""

from __future__ import annotations

import shutil
from pathlib import Path

from checkpoints.discovery import checkpoint_rows, judge_all
from checkpoints.manifest import ManifestRecord, ManifestStore
from checkpoints.restore import prepare_resume
from checkpoints.retention import RetentionSpec, apply_retention
from checkpoints.spec import PathStoreSpec, open_store
from checkpoints.sync import CheckpointSync
from orchestrator.core.paths import JobPaths
from tests.checkpoints.darknet_like import FIXTURES, MicroWeightsValidator

PJ = FIXTURES / "pjreddie"


def test_train_sync_die_resume_on_a_new_machine(tmp_path: Path) -> None:
    home = tmp_path / "drive" / "MyDrive" / "jobs ü" / "micro"
    machine1 = JobPaths(home=home, local=tmp_path / "machine 1" / "micro")
    store = open_store(PathStoreSpec(max_entries_per_folder=3), machine1)
    manifests = ManifestStore(store, session="session-1")
    backup = machine1.work / "backup"
    backup.mkdir(parents=True)
    policy = RetentionSpec(keep_last=2)

    def retain(record: ManifestRecord) -> None:
        apply_retention(manifests, policy)

    sync = CheckpointSync(
        backup, manifests, validator=MicroWeightsValidator(), poll_interval=0.05, on_published=retain
    ).start()
    try:
        for name in ("micro_100.weights", "micro_200.weights"):
            shutil.copy(PJ / name, backup / name)
            assert sync.flush(timeout=20)
        # darknet rewrites micro.backup; the last write is cut off by the disconnect
        shutil.copy(PJ / "micro.backup", backup / "micro.backup")
        assert sync.flush(timeout=20)
        shutil.copy(PJ / "micro.backup.truncated", backup / "micro.backup")
        assert sync.flush(timeout=20)
    finally:
        sync.stop()  # the VM vanishes: machine 1's disk is gone
    shutil.rmtree(machine1.work)

    manifest = ManifestStore(store).load()
    assert sorted((r.name, r.counter) for r in manifest.records) == [("micro.backup", 200), ("micro_200.weights", 200)]

    machine2 = JobPaths(home=home, local=tmp_path / "machine 2" / "micro")
    point = prepare_resume(
        open_store(None, machine2), manifest, machine2.work / "backup", validator=MicroWeightsValidator()
    )
    assert point is not None and point.restored and point.candidate.counter == 200
    assert point.path.read_bytes() == (PJ / "micro_200.weights").read_bytes()

    rows = checkpoint_rows(judge_all(store, manifest, machine2.work / "backup", validator=MicroWeightsValidator()))
    assert sum(r.resume for r in rows) == 1 and all(r.valid for r in rows)
    assert {r.where for r in rows} == {"store", "local"}
