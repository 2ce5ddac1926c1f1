"""Every path of a face_detection job, built on the job's :class:`~orchestrator.core.paths.JobPaths`.

Durable: the output folder in the job home (``<home>/<output>/``: per-input outputs and ``batch_status.json``).
Local: the cache of converted model weights and the prefetched copies of inputs, in the work folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jobs.face_detection.partial import OutputFiles
from orchestrator.core.paths import JobPaths

STATUS_FILE = "batch_status.json"


@dataclass(frozen=True)
class FacePaths:
    job: JobPaths
    output_name: str = "output"  # the spec's ``output``: a folder name inside the home

    @property
    def output(self) -> Path:
        return self.job.home / self.output_name

    @property
    def batch_status(self) -> Path:
        """The small progress record ``orchestrator status`` reads (videos done/failed/total, fps, ETA)."""
        return self.output / STATUS_FILE

    def input_files(self, name: str, image: bool = False) -> OutputFiles:
        """The outputs of the input whose output name is ``name`` (an image's have its own layout)."""
        return OutputFiles(self.output, name, image=image)

    @property
    def prefetch(self) -> Path:
        """Local copies of the next inputs, made while one is processed (``inputs.InputPrefetcher``)."""
        return self.job.work / "prefetch"

    @property
    def weights_cache(self) -> Path:
        """Model weights converted on this machine (e.g. the imported tiny RetinaFace)."""
        return self.job.work / "weights"
