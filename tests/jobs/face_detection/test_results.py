"""The face job's results hook: finished inputs' files under their plain names; unfinished ones left out."""

from __future__ import annotations

from pathlib import Path

from jobs.face_detection.paths import FacePaths
from jobs.face_detection.results import publish_face_results
from orchestrator.core.paths import JobPaths
from orchestrator.core.results import ResultsFolder


def test_finished_inputs_are_published_and_unfinished_ones_are_not(tmp_path: Path) -> None:
    job = JobPaths(home=tmp_path / "home ü")
    outputs = FacePaths(job)
    outputs.output.mkdir(parents=True)
    for name, text in (("street cam.detections.jsonl", '{"frame": 0}\n'), ("street cam.summary.json", "{}"),
                       ("street cam.annotated.mp4", "mp4"), ("lobby.detections.jsonl", '{"frame": 0}\n')):
        outputs.output_file(name).write_text(text)
    names = publish_face_results(ResultsFolder(job), outputs, ["street cam", "lobby"])
    assert names == sorted(["street cam.detections.jsonl", "street cam.summary.json", "street cam.annotated.mp4"])
    assert (tmp_path / "home ü" / "results" / "street cam.detections.jsonl").read_text() == '{"frame": 0}\n'
