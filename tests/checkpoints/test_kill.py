"""kill -9 at random moments while checkpoints are published and retention runs: nothing saved is lost."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkpoints.manifest import MANIFEST_KEY, Manifest, ManifestStore
from checkpoints.path_store import PathStore
from checkpoints.retention import RetentionSpec, apply_retention

REPO = Path(__file__).resolve().parents[2]

WRITER = r"""
import os, random, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from checkpoints.manifest import ManifestStore
from checkpoints.path_store import PathStore
from checkpoints.retention import RetentionSpec, apply_retention

store = PathStore(Path(sys.argv[2]), max_entries_per_folder=4)
manifests = ManifestStore(store, session=str(os.getpid()))
src = Path(sys.argv[3])
start = max((r.counter or 0 for r in manifests.load().records), default=0)
rng = random.Random(os.getpid())
for counter in range(start + 1, start + 10_000):
    src.write_bytes(os.urandom(rng.randint(1, 3 << 20)))
    manifests.publish(src, "net.weights", counter=counter)
    print(counter, flush=True)
    apply_retention(manifests, RetentionSpec(keep_last=2))
"""


def _check_store(store: PathStore) -> Manifest:
    manifest = Manifest.from_bytes(store.read_bytes(MANIFEST_KEY))  # the live manifest always parses
    for record in manifest.records:
        path = store.local_path(record.key)
        assert path is not None and path.is_file(), f"{record.key} recorded but missing"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == record.sha256, f"{record.key} is not complete"
    return manifest


@pytest.mark.slow
def test_kill_9_during_publish_and_retention_loses_nothing(tmp_path: Path) -> None:
    root = tmp_path / "drive ✓" / "store"
    store = PathStore(root, max_entries_per_folder=4)
    rng = random.Random(1)
    newest = 0
    for trial in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(REPO), str(root), str(tmp_path / f"src{trial}.bin")],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # at least one publish per trial, then kill at a random moment
        assert first, "writer died before publishing"
        time.sleep(rng.uniform(0.0, 0.5))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        printed = [int(first)] + [int(line) for line in child.stdout.read().split()]
        manifest = _check_store(store)
        counters = sorted(r.counter or 0 for r in manifest.records)
        assert counters and counters[-1] >= max(printed) >= newest, "a published checkpoint was lost"
        newest = counters[-1]
    # the next session publishes once more; leftovers of the kills - temps (swept by age) and orphans (swept
    # by retention once a newer checkpoint is recorded) - are then gone
    src = tmp_path / "last.bin"
    src.write_bytes(b"after the kills")
    manifests = ManifestStore(store)
    manifests.publish(src, "net.weights", counter=newest + 1)
    store.sweep_partials(older_than=0)
    apply_retention(manifests, RetentionSpec(keep_last=2))
    manifest = _check_store(store)
    assert {e.key for e in store.list("checkpoints/")} == {r.key for r in manifest.records}
    assert len(manifest.records) == 2
