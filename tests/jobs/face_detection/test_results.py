"""The face job's results hook: finished inputs' files under their plain names; unfinished ones left out."""

from __future__ import annotations

from pathlib import Path

from jobs.face_detection.partial import OutputFiles
from jobs.face_detection.results import publish_face_results
from orchestrator.core.paths import JobPaths
from orchestrator.core.results import ResultsFolder


def test_finished_inputs_are_published_and_unfinished_ones_are_not(tmp_path: Path) -> None:
    out = tmp_path / "home ü" / "output"
    out.mkdir(parents=True)
    done, running = OutputFiles(out, "street cam"), OutputFiles(out, "lobby")
    for path, text in ((done.detections, '{"frame": 0}\n'), (done.summary, "{}"), (done.video, "RIFF"),
                       (running.detections, '{"frame": 0}\n')):
        path.write_text(text)
    names = publish_face_results(ResultsFolder(JobPaths(home=tmp_path / "home ü")), [done, running])
    assert names == sorted([done.detections.name, done.summary.name, done.video.name])
    assert (tmp_path / "home ü" / "results" / done.detections.name).read_text() == '{"frame": 0}\n'
