"""The face_detection job's ``results/``: per input its detections, summary and annotated video, plain names.

A hook for the job to call when it completes (``publish_face_results(ResultsFolder(paths), outputs)``): the
per-input files keep their names (``<input>.detections.jsonl``, ``<input>.summary.json``, the video with its
own suffix, ``.mp4`` or ``.avi``); inputs without a finished output are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobs.face_detection.partial import OutputFiles
from orchestrator.core.results import ResultsFolder


def publish_face_results(folder: ResultsFolder, outputs: Iterable[OutputFiles]) -> list[str]:
    """Copy each finished input's detections, summary and video into ``folder``; returns the names in it."""
    for files in outputs:
        if not files.summary.is_file():  # not finished (or failed): nothing final to show
            continue
        for path in (files.detections, files.summary, files.video):
            if path.is_file():
                folder.copy(path.name, path)
    return folder.files()
