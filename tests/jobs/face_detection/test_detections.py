from __future__ import annotations

import json

from jobs.face_detection.detections import Face, FrameDetections, read_detections


def test_json_line_follows_the_documented_contract() -> None:
    face = Face((10.123, 20.0, 30.5, 40.25), 0.987654, tuple((float(i), float(i + 1)) for i in range(5)))
    line = FrameDetections(3, 0.1, (face,)).to_json_line()
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == {
        "frame": 3,
        "time_s": 0.1,
        "faces": [{"box": [10.12, 20.0, 30.5, 40.25], "score": 0.9877,
                   "landmarks": [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 5.0]]}],
    }
    assert list(json.loads(line)) == ["frame", "time_s", "faces"]


def test_faces_without_landmarks_and_round_trip() -> None:
    frames = [FrameDetections(0, 0.0, (Face((1.0, 2.0, 3.0, 4.0), 1.0),)), FrameDetections(5, 0.5, ())]
    text = "".join(f.to_json_line() for f in frames)
    assert "landmarks" not in text
    assert read_detections(text) == frames


def test_scaling_maps_inference_pixels_to_original_pixels() -> None:
    face = Face((10.0, 20.0, 30.0, 40.0), 0.9, ((10.0, 20.0),) * 5).scaled(2.0, 3.0)
    assert face.box == (20.0, 60.0, 60.0, 120.0) and face.landmarks[0] == (20.0, 60.0)
