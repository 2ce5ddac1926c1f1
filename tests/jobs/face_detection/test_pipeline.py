"""The batched pipeline end to end on videos made from the real face photo, with the real weights."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.face_detection.detections import read_detections
from jobs.face_detection.pipeline import inference_size

from .conftest import CAT_PHOTO, FACE_PHOTO, committed_chunks, kill_after_chunks, run_local, write_face_video


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


class Files:
    """The final files of one input in a run's output folder."""

    def __init__(self, out: Path, name: str, video: str = "mp4") -> None:
        self.detections = out / f"{name}.detections.jsonl"
        self.summary = out / f"{name}.summary.json"
        self.video = out / f"{name}.annotated.{video}"


def run(detector, video: Path, folder: Path, **settings) -> tuple:
    result = run_local(detector, [video], folder, **settings)
    return result.outcomes[video.stem], Files(result.out, video.stem, settings.get("video_format", "mp4"))


def test_face_found_in_every_frame(detector, face_video: Path, tmp_path: Path) -> None:
    result, files = run(detector, face_video, tmp_path / "out")
    assert result.status == "done" and result.frames == 12
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
    assert not any(p.name.endswith(".chunk") for p in (tmp_path / "out" / "store").rglob("*"))  # tidied up
    # the annotated video shows the red boxes
    first = cv2.VideoCapture(str(files.video)).read()[1]
    x1, y1, x2, y2 = (int(v) for v in frames[0].faces[0].box)
    edge = first[y1 : y2 + 1, x1].astype(int)
    assert (edge[:, 2] - edge[:, 1] > 100).mean() > 0.5


def test_frame_step_and_max_size(detector, face_video: Path, tmp_path: Path) -> None:
    _, full_files = run(detector, face_video, tmp_path / "full")
    small, small_files = run(detector, face_video, tmp_path / "small", frame_step=3, max_size=200)
    assert inference_size(320, 240, 200) == (200, 150)
    assert small.status == "done" and small.frames == 4
    everything = {f.frame: f for f in read_detections(full_files.detections.read_text())}
    stepped = read_detections(small_files.detections.read_text())
    assert [f.frame for f in stepped] == [0, 3, 6, 9]
    for frame in stepped:  # boxes come back in original pixels (unmapped, they would be 0.625x as far out)
        a, b = frame.faces[0].box, everything[frame.frame].faces[0].box
        assert abs((a[0] + a[2]) - (b[0] + b[2])) / 2 < 4 and abs((a[1] + a[3]) - (b[1] + b[3])) / 2 < 4
        assert 0.7 < (a[2] - a[0]) / (b[2] - b[0]) < 1.3
        assert box_iou(a, b) > 0.5
    assert count_frames(small_files.video) == (4, pytest.approx(10 / 3, rel=1e-2))
    assert json.loads(small_files.summary.read_text())["inference_size"] == [200, 150]


@pytest.mark.parametrize("max_size", [None, 256], ids=["full size", "resized"])
def test_video_none_decodes_into_recycled_buffers_and_finds_the_same_faces(
        detector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_size: int | None) -> None:
    """With video: none a batch's frames (and their resized copies) are decoded into again once detected; a
    buffer handed back too early would change a later frame's faces. The face slides across the frames."""
    from jobs.face_detection.video_source import FramePool

    video = write_face_video(tmp_path / "slide.avi", frames=20)
    _, reference = run(detector, video, tmp_path / "mp4", batch_size=2, chunk_frames=4, max_size=max_size)
    reused = [0]
    take = FramePool.take

    def counted(pool: FramePool) -> np.ndarray | None:
        buffer = take(pool)
        reused[0] += buffer is not None
        return buffer

    monkeypatch.setattr(FramePool, "take", counted)
    result, files = run(detector, video, tmp_path / "none", batch_size=2, chunk_frames=4, max_size=max_size,
                        video_format="none", queue_batches=1)
    assert result.status == "done" and result.frames == 20
    assert reused[0] >= 10  # most frames went into a recycled buffer
    assert files.detections.read_bytes() == reference.detections.read_bytes()
    assert len({tuple(f.box for f in d.faces) for d in read_detections(files.detections.read_text())}) > 10


def test_stop_then_resume_gives_identical_detections(detector, face_video: Path, tmp_path: Path) -> None:
    _, ref_files = run(detector, face_video, tmp_path / "ref", batch_size=2, chunk_frames=3)
    calls = {"n": 0}

    def stop_after_five_batches() -> bool:  # polled once before the input, then before every batch
        calls["n"] += 1
        return calls["n"] > 6

    folder = tmp_path / "resumed"
    first = run_local(detector, [face_video], folder, stop_after_five_batches, batch_size=2, chunk_frames=3)
    files = Files(first.out, face_video.stem)
    # chunks are 2 batches (4 frames): 5 batches commit 2 chunks, the half-made third is dropped
    assert first.status == "stopped" and committed_chunks(first.store) == 2
    assert not files.detections.exists() and not files.summary.exists()
    seen: list[int] = []
    second = run_local(detector, [face_video], folder, on_frames=lambda name, n: seen.append(n),
                       batch_size=2, chunk_frames=3)
    assert second.status == "done" and second.outcomes[face_video.stem].frames == 12
    assert sum(1 for _ in seen) == 2  # only the 4 frames (2 batches) of the last chunk were made again
    assert files.detections.read_text() == ref_files.detections.read_text()
    assert files.video.read_bytes() == ref_files.video.read_bytes()
    assert count_frames(files.video)[0] == 12
    again = run_local(detector, [face_video], folder, batch_size=2, chunk_frames=3)
    assert again.skipped == {face_video.stem} and again.outcomes[face_video.stem].status == "done"


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun_equals_uninterrupted(tiny_weights: Path, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "clip.avi", frames=24)
    script = Path(__file__).with_name("run_pipeline.py")

    def start(folder: Path) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(script), str(tiny_weights), str(video), str(folder), "2", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )

    reference = start(tmp_path / "reference")
    assert reference.wait(timeout=120) == 0
    expected = (tmp_path / "reference" / "output" / "clip.detections.jsonl").read_text()
    folder = tmp_path / "killed"
    out, store = folder / "output", folder / "store"
    rng = random.Random(1234)
    kills, committed = 0, 0
    for _ in range(3):  # kill -9 at a random moment after some more chunks got committed
        kills += kill_after_chunks(start(folder), store, committed + 1, rng, timeout=60)
        if (out / "clip.summary.json").exists():  # finished (maybe killed while tidying up): nothing to resume
            break
        committed = committed_chunks(store)
    assert kills >= 2 and committed >= 2  # the re-runs resumed from committed chunks
    final = start(folder)
    assert final.wait(timeout=120) == 0
    assert (out / "clip.detections.jsonl").read_text() == expected
    assert (out / "clip.annotated.mp4").read_bytes() == (tmp_path / "reference" / "output" / "clip.annotated.mp4").read_bytes()
    assert count_frames(out / "clip.annotated.mp4")[0] == 24
    # no temp file of a cut write in the outputs or the scratch folder (the store sweeps its own by age)
    assert not list(out.glob("*.tmp-orch")) and not list((folder / "work").glob("**/*.tmp-orch"))


def test_bad_inputs_are_recorded_and_the_batch_goes_on(detector, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_face_video(inputs / "good.avi", frames=6)
    # not random bytes: FFmpeg's probing now and then takes random bytes for a stream (seen once in CI)
    (inputs / "garbage.mp4").write_bytes(b"this is not a video\n" * 200)
    full = write_face_video(tmp_path / "full.avi", frames=30)
    (inputs / "truncated.avi").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    writer = cv2.VideoWriter(str(inputs / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    writer.release()
    (inputs / "empty.mp4").write_bytes(b"")
    paths = sorted(inputs.iterdir())
    run_ = run_local(detector, paths, tmp_path / "out")
    results, out = run_.outcomes, run_.out
    assert results["good"].status == "done" and results["good"].frames == 6
    assert "cannot open video garbage.mp4" in results["garbage"].reason
    assert "truncated: decoded 15 of 30 frames" in results["truncated"].reason
    assert "no frames could be decoded" in results["zero"].reason
    assert "empty" in results["empty"].reason
    for name in ("garbage", "truncated", "zero", "empty"):
        assert results[name].status == "failed"
        assert json.loads((out / f"{name}.failed.json").read_text())["reason"] == results[name].reason
        assert not (out / f"{name}.detections.jsonl").exists()
    rerun = run_local(detector, [inputs / "truncated.avi"], tmp_path / "out")
    assert rerun.skipped == {"truncated"} and rerun.outcomes["truncated"].status == "failed"


def test_images_are_one_frame_inputs(detector, tmp_path: Path) -> None:
    result = run_local(detector, [FACE_PHOTO, CAT_PHOTO], tmp_path, max_size=200)
    face, cat = result.outcomes["astronaut"], result.outcomes["chelsea"]
    assert (face.status, face.faces, cat.status, cat.faces) == ("done", 1, "done", 0)
    out = result.out
    (frame,) = read_detections((out / "astronaut.detections.jsonl").read_text())
    assert frame.frame == 0 and frame.faces[0].score > 0.99
    x1, _, x2, _ = frame.faces[0].box
    assert 100 < (x1 + x2) / 2 < 180  # original 320x320 pixels, although inferred at 200x200
    annotated = cv2.imread(str(out / "astronaut.annotated.jpg"))
    assert annotated.shape == (320, 320, 3)
    assert read_detections((out / "chelsea.detections.jsonl").read_text())[0].faces == ()


def test_mp4_input(detector, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "clip.mp4", frames=5, fourcc="mp4v")
    result, files = run(detector, video, tmp_path / "out")
    assert result.status == "done" and result.faces == 5
    assert np.all([len(f.faces) == 1 for f in read_detections(files.detections.read_text())])


def test_resume_with_frame_step_and_max_size(detector, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "long.avi", frames=24)
    settings = {"batch_size": 2, "chunk_frames": 2, "frame_step": 3, "max_size": 200, "video_format": "avi"}
    _, ref_files = run(detector, video, tmp_path / "ref", **settings)
    calls = {"n": 0}

    def stop_after_two_batches() -> bool:  # polled once before the input, then before every batch
        calls["n"] += 1
        return calls["n"] > 3

    folder = tmp_path / "resumed"
    first = run_local(detector, [video], folder, stop_after_two_batches, **settings)
    assert first.status == "stopped" and committed_chunks(first.store) == 2  # frames 0, 3 | 6, 9
    assert run_local(detector, [video], folder, **settings).outcomes["long"].status == "done"
    files = Files(first.out, "long", "avi")
    assert files.detections.read_text() == ref_files.detections.read_text()
    assert files.video.read_bytes() == ref_files.video.read_bytes()
    assert [f.frame for f in read_detections(files.detections.read_text())] == list(range(0, 24, 3))


def test_fp16_is_ignored_on_cpu(mobilenet) -> None:
    import torch

    from jobs.face_detection.detector import RetinaFaceDetector

    half = RetinaFaceDetector(mobilenet, torch.device("cpu"), fp16=True)
    assert half.dtype == torch.float32 and next(half.model.parameters()).dtype == torch.float32


def _maker(detector, video: Path, **settings):
    from jobs.face_detection.pipeline import ChunkMaker, FacePipeline, PipelineSettings

    pipeline = FacePipeline(detector, PipelineSettings(**{"batch_size": 2, "chunk_frames": 2, **settings}), "test")
    return ChunkMaker(pipeline, video, video.stem, "f" * 24)


def test_a_slow_commit_does_not_hold_up_the_next_chunks(detector, tmp_path: Path) -> None:
    """A commit through a store on the Drive mount takes round trips: while the first chunk's commit waits,
    the next chunks are detected and made; every chunk is handed over, in order, before run returns."""
    import threading

    video = write_face_video(tmp_path / "slide.avi", frames=16)
    release, handed, detected = threading.Event(), [], [0]

    def slow_commit(chunk) -> None:
        if chunk.index == 0:
            assert release.wait(30)
        handed.append(chunk.index)

    def on_frames(frames: int) -> None:
        detected[0] = frames
        if frames >= 8:  # 4 chunks detected while chunk 0 still waits for its commit
            release.set()

    maker = _maker(detector, video, queue_batches=1)
    try:
        result = maker.run(0, None, slow_commit, on_frames=on_frames)
    finally:
        maker.close()
    assert result.status == "done" and release.is_set()
    assert handed == list(range(9))  # 8 chunks of 2 frames, then the end of the stream (no frames)

    blocked = _maker(detector, video, queue_batches=1, commit_ahead=0)  # the writer commits: detection stalls
    stalled = threading.Event()

    def writer_commit(chunk) -> None:
        if chunk.index == 0:
            stalled.wait(1.0)
            handed_then.append(detected[0])

    handed_then: list[int] = []
    try:
        blocked.run(0, None, writer_commit, on_frames=lambda frames: detected.__setitem__(0, frames))
    finally:
        blocked.close()
    assert handed_then[0] <= 6  # commit_ahead 0: the first chunk, one batch queued, one detected, then a wait


def test_a_failed_commit_stops_the_run_and_is_raised(detector, tmp_path: Path) -> None:
    from orchestrator.core.errors import StorageError

    video = write_face_video(tmp_path / "slide.avi", frames=16)
    handed: list[int] = []

    def failing(chunk) -> None:
        if chunk.index == 2:
            raise StorageError("the store is gone")
        handed.append(chunk.index)

    maker = _maker(detector, video)
    with pytest.raises(StorageError, match="the store is gone"):
        maker.run(0, None, failing)
    maker.close()
    assert handed == [0, 1]


def test_a_stop_hands_over_every_chunk_already_made(detector, tmp_path: Path) -> None:
    video = write_face_video(tmp_path / "slide.avi", frames=16)
    handed: list[int] = []
    made = [0]

    def commit(chunk) -> None:
        handed.append(chunk.index)

    def on_frames(frames: int) -> None:
        made[0] = frames

    maker = _maker(detector, video)
    try:
        result = maker.run(0, None, commit, should_stop=lambda: made[0] >= 6, on_frames=on_frames)
    finally:
        maker.close()
    assert result.status == "stopped"
    assert handed == list(range(len(handed))) and len(handed) >= 3  # the 6 frames detected: 3 whole chunks
