"""The batched pipeline end to end on videos made from the real face photo, with the real weights."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.face_detection.detections import read_detections
from jobs.face_detection.partial import OutputFiles
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings, inference_size

from .conftest import CAT_PHOTO, FACE_PHOTO, committed_chunks, kill_after_chunks, write_face_video


def count_frames(path: Path) -> tuple[int, float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = 0
    while capture.read()[0]:
        frames += 1
    return frames, fps


def box_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture()
def face_video(tmp_path: Path) -> Path:
    return write_face_video(tmp_path / "vidéo in 1.avi", frames=12)


def run(detector, video: Path, out: Path, **settings) -> tuple:
    pipeline = FacePipeline(detector, PipelineSettings(**{"batch_size": 4, "chunk_frames": 4, **settings}), "test")
    files = OutputFiles(out, video.stem)
    return pipeline.process(video, files), files


def test_face_found_in_every_frame(detector, face_video: Path, tmp_path: Path) -> None:
    result, files = run(detector, face_video, tmp_path / "out")
    assert result.status == "done" and result.frames_done == 12
    frames = read_detections(files.detections.read_text())
    assert [f.frame for f in frames] == list(range(12))
    assert [f.time_s for f in frames] == pytest.approx([i / 10 for i in range(12)])
    for i, frame in enumerate(frames):
        assert len(frame.faces) == 1 and frame.faces[0].score > 0.95
        x1, _, x2, _ = frame.faces[0].box
        assert 10 + 6 * i < (x1 + x2) / 2 < 190 + 6 * i  # follows the sliding photo
    assert count_frames(files.video) == (12, pytest.approx(10.0))
    summary = json.loads(files.summary.read_text())
    assert summary["frames_processed"] == 12 and summary["faces_total"] == 12
    assert summary["faces_per_frame_mean"] == 1.0 and summary["fps_achieved"] > 0
    assert not (tmp_path / "out" / ".partial").exists()
    # the annotated video shows the red boxes
    first = cv2.VideoCapture(str(files.video)).read()[1]
    x1, y1, x2, y2 = (int(v) for v in frames[0].faces[0].box)
    edge = first[y1 : y2 + 1, x1].astype(int)
    assert (edge[:, 2] - edge[:, 1] > 100).mean() > 0.5


def test_frame_step_and_max_size(detector, face_video: Path, tmp_path: Path) -> None:
    _, full_files = run(detector, face_video, tmp_path / "full")
    small, small_files = run(detector, face_video, tmp_path / "small", frame_step=3, max_size=200)
    assert inference_size(320, 240, 200) == (200, 150)
    assert small.status == "done" and small.frames_done == 4
    everything = {f.frame: f for f in read_detections(full_files.detections.read_text())}
    stepped = read_detections(small_files.detections.read_text())
    assert [f.frame for f in stepped] == [0, 3, 6, 9]
    for frame in stepped:  # boxes come back in original pixels (unmapped, they would be 0.625x as far out)
        a, b = frame.faces[0].box, everything[frame.frame].faces[0].box
        assert abs((a[0] + a[2]) - (b[0] + b[2])) / 2 < 4 and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 < 4
        assert 0.7 < (a[2] - a[0]) / (b[2] - b[0]) < 1.3
        assert box_iou(a, b) > 0.5
    assert count_frames(small_files.video) == (4, pytest.approx(10 / 3, rel=1e-3))
    assert json.loads(small_files.summary.read_text())["inference_size"] == [200, 150]


def test_stop_then_resume_gives_identical_detections(detector, face_video: Path, tmp_path: Path) -> None:
    _, ref_files = run(detector, face_video, tmp_path / "ref", batch_size=2, chunk_frames=3)
    calls = {"n": 0}

    def stop_after_three_batches() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    pipeline = FacePipeline(detector, PipelineSettings(batch_size=2, chunk_frames=3), "test")
    files = OutputFiles(tmp_path / "resumed", face_video.stem)
    first = pipeline.process(face_video, files, should_stop=stop_after_three_batches)
    assert first.status == "stopped" and first.frames_done == 6  # 3 batches of 2, all committed
    assert not files.detections.exists() and not files.summary.exists() and files.progress.exists()
    progress = json.loads(files.progress.read_text())
    assert progress["next_frame"] == 6 and progress["chunks"] == 2
    seen: list[int] = []
    second = pipeline.process(face_video, files, on_frames=seen.append)
    assert second.status == "done" and seen[0] == 8  # continued from frame 6, not 0
    assert files.detections.read_text() == ref_files.detections.read_text()
    assert count_frames(files.video)[0] == 12
    again = pipeline.process(face_video, files)
    assert again.skipped and again.status == "done"


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun_equals_uninterrupted(tiny_weights: Path, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "clip.avi", frames=24)
    script = Path(__file__).with_name("run_pipeline.py")

    def start(out: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(script), str(tiny_weights), str(video), str(out), "2", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )

    reference = start(tmp_path / "reference")
    assert reference.wait(timeout=120) == 0
    expected = (tmp_path / "reference" / "clip.detections.jsonl").read_text()
    out = tmp_path / "killed"
    progress = out / ".partial" / "clip" / "progress.json"
    rng = random.Random(1234)
    kills, committed = 0, 0
    for _ in range(3):  # kill -9 at a random moment after some more chunks got committed
        kills += kill_after_chunks(start(out), progress, committed + 1, rng, timeout=60)
        if (out / "clip.summary.json").exists():  # finished (maybe killed while tidying up): nothing to resume
            break
        committed = committed_chunks(progress) if progress.exists() else committed
    assert kills >= 2 and committed >= 2  # the re-runs resumed from committed chunks
    final = start(out)
    assert final.wait(timeout=120) == 0
    assert (out / "clip.detections.jsonl").read_text() == expected
    assert count_frames(out / "clip.annotated.avi")[0] == 24
    assert not list(out.glob("**/*.tmp-orch"))


def test_bad_inputs_are_recorded_and_the_batch_goes_on(detector, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_face_video(inputs / "good.avi", frames=6)
    (inputs / "garbage.mp4").write_bytes(os.urandom(4000))
    full = write_face_video(tmp_path / "full.avi", frames=30)
    (inputs / "truncated.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    writer = cv2.VideoWriter(str(inputs / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    writer.release()
    (inputs / "empty.mp4").write_bytes(b"")
    pipeline = FacePipeline(detector, PipelineSettings(batch_size=4, chunk_frames=4), "test")
    out = tmp_path / "out"
    results = {
        p.stem: pipeline.process(p, OutputFiles(out, p.stem))
        for p in sorted(inputs.iterdir())
    }
    assert results["good"].status == "done" and results["good"].frames_done == 6
    assert "cannot open video garbage.mp4" in results["garbage"].reason
    assert "truncated: decoded 15 of 30 frames" in results["truncated"].reason
    assert "no frames could be decoded" in results["zero"].reason
    assert "empty" in results["empty"].reason
    for name in ("garbage", "truncated", "zero", "empty"):
        assert results[name].status == "failed"
        assert json.loads((out / f"{name}.failed.json").read_text())["reason"] == results[name].reason
        assert not (out / f"{name}.detections.jsonl").exists()
    rerun = pipeline.process(inputs / "truncated.avi", OutputFiles(out, "truncated"))
    assert rerun.skipped and rerun.status == "failed"


def test_images_are_one_frame_inputs(detector, tmp_path: Path) -> None:
    pipeline = FacePipeline(detector, PipelineSettings(max_size=200), "test")
    face = pipeline.process(FACE_PHOTO, OutputFiles(tmp_path, "astronaut"))
    cat = pipeline.process(CAT_PHOTO, OutputFiles(tmp_path, "chelsea"))
    assert (face.status, face.faces, cat.status, cat.faces) == ("done", 1, "done", 0)
    (frame,) = read_detections((tmp_path / "astronaut.detections.jsonl").read_text())
    assert frame.frame == 0 and frame.faces[0].score > 0.99
    x1, _, x2, _ = frame.faces[0].box
    assert 100 < (x1 + x2) / 2 < 180  # original 320x320 pixels, although inferred at 200x200
    annotated = cv2.imread(str(tmp_path / "astronaut.annotated.jpg"))
    assert annotated.shape == (320, 320, 3)
    assert read_detections((tmp_path / "chelsea.detections.jsonl").read_text())[0].faces == ()


def test_mp4_input(detector, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "clip.mp4", frames=5, fourcc="mp4v")
    result, files = run(detector, video, tmp_path / "out")
    assert result.status == "done" and result.faces == 5
    assert np.all([len(f.faces) == 1 for f in read_detections(files.detections.read_text())])


def test_resume_with_frame_step_and_max_size(detector, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "long.avi", frames=24)
    settings = {"batch_size": 2, "chunk_frames": 2, "frame_step": 3, "max_size": 200}
    _, ref_files = run(detector, video, tmp_path / "ref", **settings)
    calls = {"n": 0}

    def stop_after_two_batches() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    pipeline = FacePipeline(detector, PipelineSettings(**settings), "test")
    files = OutputFiles(tmp_path / "resumed", video.stem)
    first = pipeline.process(video, files, should_stop=stop_after_two_batches)
    assert first.status == "stopped" and first.frames_done == 4
    assert json.loads(files.progress.read_text())["next_frame"] == 12  # frames 0, 3, 6, 9 done
    assert pipeline.process(video, files).status == "done"
    assert files.detections.read_text() == ref_files.detections.read_text()
    assert [f.frame for f in read_detections(files.detections.read_text())] == list(range(0, 24, 3))


def test_fp16_is_ignored_on_cpu(mobilenet) -> None:
    import torch

    from jobs.face_detection.detector import RetinaFaceDetector

    half = RetinaFaceDetector(mobilenet, torch.device("cpu"), fp16=True)
    assert half.dtype == torch.float32 and next(half.model.parameters()).dtype == torch.float32
