"""Several inputs through one pipeline at once (their decoders in parallel, the detector taking turns) give the
same detections as one at a time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest

from jobs.face_detection.chunks import InputStatus
from jobs.face_detection.executor import ExecutorHooks, LocalExecutor, process_inputs
from jobs.face_detection.ledger import FaceLedger
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings

from .conftest import write_face_video


def test_inputs_at_once_equal_one_at_a_time(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=6 + i) for i in range(3)]
    settings = PipelineSettings(batch_size=2, chunk_frames=2)
    pipeline = FacePipeline(detector, settings, "test")
    threads_before = cv2.getNumThreads()

    def run(folder: Path, video: Path) -> int:
        _, outcomes, _ = process_inputs(LocalExecutor(pipeline), FaceLedger.in_folder(folder), [video],
                                        pipeline.fingerprint, 1, settings.frames_per_chunk)
        return outcomes[video.stem].frames

    alone = [run(tmp_path / "alone", video) for video in videos]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda iv: run(tmp_path / f"together {iv[0]}", iv[1]), enumerate(videos)))
    assert alone == together == [6, 7, 8]
    for i, video in enumerate(videos):
        name = f"{video.stem}.detections.jsonl"
        assert (tmp_path / f"together {i}" / "output" / name).read_text() == \
            (tmp_path / "alone" / "output" / name).read_text()
    assert cv2.getNumThreads() == threads_before  # OpenCV's pool restored once the last input finished


def local_run(detector, videos: list[Path], folder: Path, decoders: int, hooks: ExecutorHooks | None = None
              ) -> tuple[InputStatus, dict]:  # type: ignore[no-untyped-def]
    """The job's path: one ledger, the local executor with ``decoders`` inputs at once."""
    settings = PipelineSettings(batch_size=2, chunk_frames=2, video_format="avi")
    pipeline = FacePipeline(detector, settings, "test")
    status, outcomes, _ = process_inputs(LocalExecutor(pipeline, decoders=decoders), FaceLedger.in_folder(folder),
                                         videos, pipeline.fingerprint, 1, settings.frames_per_chunk, hooks)
    return status, outcomes


def outputs(folder: Path, videos: list[Path]) -> dict[str, bytes]:
    out = folder / "output"
    return {f"{v.stem}{suffix}": (out / f"{v.stem}{suffix}").read_bytes()
            for v in videos for suffix in (".detections.jsonl", ".annotated.avi")}


def test_the_local_executor_decodes_inputs_at_once_with_the_same_outputs(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=8 + 2 * i) for i in range(3)]
    status, _ = local_run(detector, videos, tmp_path / "one by one", 1)
    assert status is InputStatus.DONE
    active: set[str] = set()
    overlapped: list[bool] = []
    lock = threading.Lock()

    def on_frames(name: str, frames: int) -> None:
        with lock:
            active.add(name)
            overlapped.append(len(active) > 1)

    def on_finished(task, outcome) -> None:  # type: ignore[no-untyped-def]
        with lock:
            active.discard(task.name)

    hooks = ExecutorHooks(on_frames=on_frames, on_finished=on_finished)
    status, outcomes = local_run(detector, videos, tmp_path / "two at once", 2, hooks)
    assert status is InputStatus.DONE and [outcomes[v.stem].frames for v in videos] == [8, 10, 12]
    assert any(overlapped)  # two inputs were in flight at once
    assert outputs(tmp_path / "two at once", videos) == outputs(tmp_path / "one by one", videos)


def test_a_stop_with_inputs_at_once_then_a_rerun_gives_the_same_outputs(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=10) for i in range(3)]
    local_run(detector, videos, tmp_path / "reference", 1)
    calls = [0]

    def should_stop() -> bool:
        calls[0] += 1
        return calls[0] > 8

    status, _ = local_run(detector, videos, tmp_path / "stopped", 2, ExecutorHooks(should_stop=should_stop))
    assert status is InputStatus.STOPPED
    assert not (tmp_path / "stopped" / "output" / "clip 2.summary.json").exists()
    status, _ = local_run(detector, videos, tmp_path / "stopped", 2)
    assert status is InputStatus.DONE
    assert outputs(tmp_path / "stopped", videos) == outputs(tmp_path / "reference", videos)


class _FailingDetector:
    name = "failing"

    def __init__(self, inner, after: int) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.left = inner, after

    def detect(self, frames):  # type: ignore[no-untyped-def]
        self.left -= 1
        if self.left < 0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.inner.detect(frames)


def test_an_error_in_one_input_stops_the_others_and_reaches_the_caller(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=12) for i in range(3)]
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="illegal memory access"):
        local_run(_FailingDetector(detector, after=3), videos, tmp_path / "out", 2)
    assert threading.active_count() == before  # no input thread is left running


def test_decoders_auto_is_one_on_the_cpu_and_a_number_is_kept(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    from jobs.face_detection.job import local_decoders
    from jobs.face_detection.spec import LocalExecutorSpec

    assert local_decoders(LocalExecutorSpec(), detector) == 1
    assert local_decoders(LocalExecutorSpec(decoders=3), detector) == 3

    class OnGpu:
        device = type("Device", (), {"type": "cuda"})()

    assert 1 <= local_decoders(LocalExecutorSpec(), OnGpu()) <= 4
    with pytest.raises(ValueError, match="decoders"):
        LocalExecutorSpec(decoders=0)


def test_one_decoder_decodes_the_next_input_while_the_last_is_published(tmp_path: Path, detector,  # type: ignore[no-untyped-def]
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishing an input through a store on the Drive mount takes seconds: with one decoder the next input's
    frames are decoded meanwhile, and the outputs equal a run with no wait."""
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=6) for i in range(2)]
    local_run(detector, videos, tmp_path / "reference", 1)
    second_decoded = threading.Event()
    finish = FaceLedger.finish

    def slow_finish(ledger, name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "clip 0":  # one input after the other, clip 1 would start only once this returned
            assert second_decoded.wait(30), "the next input was not decoded while clip 0 was published"
        return finish(ledger, name, *args, **kwargs)

    def on_frames(name: str, frames: int) -> None:
        if name == "clip 1":
            second_decoded.set()

    monkeypatch.setattr(FaceLedger, "finish", slow_finish)
    status, outcomes = local_run(detector, videos, tmp_path / "one decoder", 1, ExecutorHooks(on_frames=on_frames))
    assert status is InputStatus.DONE and [outcomes[v.stem].frames for v in videos] == [6, 6]
    assert outputs(tmp_path / "one decoder", videos) == outputs(tmp_path / "reference", videos)
