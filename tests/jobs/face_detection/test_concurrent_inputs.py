"""Several inputs through one pipeline at once (their decoders in parallel, the detector taking turns) give the
same detections as one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2

from jobs.face_detection.partial import OutputFiles
from jobs.face_detection.pipeline import FacePipeline, PipelineSettings

from .conftest import write_face_video


def test_inputs_at_once_equal_one_at_a_time(tmp_path: Path, detector) -> None:  # type: ignore[no-untyped-def]
    videos = [write_face_video(tmp_path / f"clip {i}.avi", frames=6 + i) for i in range(3)]
    pipeline = FacePipeline(detector, PipelineSettings(batch_size=2, chunk_frames=2), "test")
    threads_before = cv2.getNumThreads()
    alone = tmp_path / "alone"
    for i, video in enumerate(videos):
        assert pipeline.process(video, OutputFiles(alone, f"v{i}")).status == "done"
    together = tmp_path / "together"
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda iv: pipeline.process(iv[1], OutputFiles(together, f"v{iv[0]}")),
                                enumerate(videos)))
    assert [r.frames_done for r in results] == [6, 7, 8]
    for i in range(3):
        assert (together / f"v{i}.detections.jsonl").read_text() == (alone / f"v{i}.detections.jsonl").read_text()
    assert cv2.getNumThreads() == threads_before  # OpenCV's pool restored once the last input finished
