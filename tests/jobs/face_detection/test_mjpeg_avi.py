from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from jobs.face_detection.mjpeg_avi import iter_segment, pack_segment, write_avi_files


def jpeg_frames(count: int) -> list[bytes]:
    frames = []
    for i in range(count):
        image = np.full((48, 64, 3), 20 * i, np.uint8)
        frames.append(cv2.imencode(".jpg", image)[1].tobytes())
    return frames


def read_all(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_segment_round_trip_and_torn_segment(tmp_path: Path) -> None:
    frames = jpeg_frames(3)
    path = tmp_path / "seg.mjpg"
    path.write_bytes(pack_segment(frames))
    assert list(iter_segment(path)) == frames
    path.write_bytes(pack_segment(frames)[:-10])
    with pytest.raises(ValueError, match="ends inside a frame"):
        list(iter_segment(path))


def test_avi_is_read_back_by_opencv_without_reencoding(tmp_path: Path) -> None:
    frames = jpeg_frames(7)
    (path,) = write_avi_files(iter(frames), tmp_path / "out ü.avi", 64, 48, 29.97)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, rel=1e-4)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (64, 48)
    decoded = read_all(path)
    assert len(decoded) == 7
    assert [round(f.mean()) for f in decoded] == [20 * i for i in range(7)]
    assert all(jpeg in path.read_bytes() for jpeg in frames)  # the JPEG bytes were copied, not re-encoded


def test_large_outputs_are_split_into_parts(tmp_path: Path) -> None:
    frames = jpeg_frames(10)
    limit = 2000 + 4 * max(len(f) for f in frames)
    paths = write_avi_files(iter(frames), tmp_path / "clip.annotated.avi", 64, 48, 10.0, max_part_bytes=limit)
    assert len(paths) > 1
    assert paths[0].name == "clip.annotated.avi" and paths[1].name == "clip.annotated.part2.avi"
    assert all(p.stat().st_size <= limit for p in paths)
    assert sum(len(read_all(p)) for p in paths) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files
