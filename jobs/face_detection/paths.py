"""Every path of a face_detection job, built on the job's :class:`~orchestrator.core.paths.JobPaths`.

Durable: the output folder in the job home (``<home>/<output>/``: per-input final outputs and
``batch_status.json``); the chunks themselves live in the job's store (``ledger.py``). Local: the cache of
converted model weights, the prefetched copies of inputs and the staging folder of chunks on their way to or
from the store, in the work folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

    def output_file(self, file_name: str) -> Path:
        """A final output of an input (``clip.summary.json``, ``clip.annotated.mp4``, ...)."""
        return self.output / file_name

    @property
    def weights_cache(self) -> Path:
        """Model weights converted on this machine (e.g. the imported tiny RetinaFace)."""
        return self.job.work / "weights"

    @property
    def prefetch(self) -> Path:
        """Local copies of the next inputs, made while one is processed (``inputs.InputPrefetcher``)."""
        return self.job.work / "prefetch"

    @property
    def staging(self) -> Path:
        """Chunks being committed to the store, and store objects being read (local, scratch)."""
        return self.job.work / "face-staging"
