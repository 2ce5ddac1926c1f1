"""The face_detection job's ``results/``: per input its detections, summary and annotated video, plain names.

Called by the job when it completes (``publish_face_results(ResultsFolder(paths), face_paths, names)``): the
per-input files keep their names (``<input>.detections.jsonl``, ``<input>.summary.json``, the video with its
own suffix, ``.mp4``, ``.avi`` or ``.jpg``); inputs without a finished output are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobs.face_detection.ledger import detections_name, summary_name
from jobs.face_detection.paths import FacePaths
from orchestrator.core.results import ResultsFolder


def publish_face_results(folder: ResultsFolder, outputs: FacePaths, names: Iterable[str]) -> list[str]:
    """Copy each finished input's detections, summary and video into ``folder``; returns the names in it."""
    for name in names:
        summary = outputs.output_file(summary_name(name))
        if not summary.is_file():  # not finished (or failed): nothing final to show
            continue
        videos = sorted(outputs.output.glob(f"{name}.annotated.*"))
        for path in (outputs.output_file(detections_name(name)), summary, *videos):
            if path.is_file():
                folder.copy(path.name, path)
    return folder.files()
