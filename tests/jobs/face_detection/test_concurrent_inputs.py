"""Several inputs through one pipeline at once (their decoders in parallel, the detector taking turns) give the
same detections as one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

from jobs.face_detection.executor import LocalExecutor, process_inputs
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
