"""Face inputs prefetched from the (slow) Drive mount double to local disk, within a size budget."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from jobs.face_detection.inputs import InputPrefetcher
from tests.mounts import mount
from tests.mounts.markers import requires_fuse

from .conftest import write_face_video
from .test_job import cli, job_folder

pytestmark = requires_fuse


def _inputs(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, size in enumerate(sizes):
        path = folder / f"clip {i}.mp4"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


def test_next_inputs_are_copied_locally_within_the_budget(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    sizes = [3000, 3000, 3000, 9000, 3000]
    originals = _inputs(drive / "videos", sizes)
    with mount(drive, tmp_path / "vm", open_latency_s=0.02) as m:
        inputs = [m.path / "videos" / p.name for p in originals]
        cache = tmp_path / "local cache"
        peak = 0
        with InputPrefetcher(inputs, cache, budget_bytes=7000) as prefetch:
            for path, original in zip(inputs, originals):
                local = prefetch.take(path)
                held = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
                peak = max(peak, held)
                if original.stat().st_size > 7000:
                    assert local == path  # larger than the whole budget: read where it is
                else:
                    assert local.parent.parent == cache and local.name == path.name
                    assert local.read_bytes() == original.read_bytes()
                time.sleep(0.1)  # "processing": the next copy is made meanwhile
                prefetch.release(path)
                assert not local.exists() or local == path
        assert peak <= 7000
    assert not cache.exists()


def test_local_inputs_and_skipped_inputs_are_not_copied(tmp_path: Path) -> None:
    inputs = _inputs(tmp_path / "videos", [1000, 1000])
    with InputPrefetcher(inputs, tmp_path / "cache", 10_000) as prefetch:
        assert [prefetch.take(p) for p in inputs] == inputs  # same file system as the cache: nothing to gain
    drive = tmp_path / "drive"
    _inputs(drive / "v", [1000, 1000])
    with mount(drive, tmp_path / "vm") as m:
        remote = sorted((m.path / "v").iterdir())
        with InputPrefetcher(remote, tmp_path / "cache2", 10_000, skip=lambda p: p == remote[0]) as prefetch:
            assert prefetch.take(remote[0]) == remote[0]
            assert prefetch.take(remote[1]) != remote[1]


def test_the_next_copy_overlaps_the_current_input(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    originals = _inputs(drive / "videos", [2000] * 4)
    with mount(drive, tmp_path / "vm", open_latency_s=0.3) as m:
        inputs = [m.path / "videos" / p.name for p in originals]
        with InputPrefetcher(inputs, tmp_path / "cache", 100_000) as prefetch:
            prefetch.take(inputs[0])
            time.sleep(0.8)  # processing input 0 while the others are fetched
            t0 = time.monotonic()
            for path in inputs[1:]:
                prefetch.take(path)
            assert time.monotonic() - t0 < 0.3


def test_face_job_on_the_mount_gives_the_same_results_as_from_local_disk(tmp_path: Path) -> None:
    local_job = job_folder(tmp_path / "local", frames=6)
    assert cli(local_job, "run", "job.yaml").returncode == 0
    drive = tmp_path / "drive"
    (drive / "videos").mkdir(parents=True)
    shutil.copy(local_job / "videos" / "clip.avi", drive / "videos" / "clip.avi")
    write_face_video(drive / "videos" / "second.avi", frames=4)
    with mount(drive, tmp_path / "vm", open_latency_s=0.01) as m:
        mounted_job = job_folder(tmp_path / "mounted", frames=1)
        text = (mounted_job / "job.yaml").read_text().replace("inputs: videos", f"inputs: '{m.path / 'videos'}'")
        (mounted_job / "job.yaml").write_text(text)
        result = cli(mounted_job, "run", "job.yaml")
        assert result.returncode == 0, result.stderr[-2000:]
        opens = m.stats()["opens"]
    out_local = local_job / "jobs" / "faces" / "output"
    out_mounted = mounted_job / "jobs" / "faces" / "output"
    assert (out_mounted / "clip.detections.jsonl").read_text() == (out_local / "clip.detections.jsonl").read_text()
    summary = json.loads((out_mounted / "clip.summary.json").read_text())
    assert summary["input"] == str(m.path / "videos" / "clip.avi")  # named by where it is, not the local copy
    assert not (mounted_job / "work" / "faces" / "prefetch").exists() or not list(
        (mounted_job / "work" / "faces" / "prefetch").rglob("*.avi"))
    assert opens >= 2

