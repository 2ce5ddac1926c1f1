"""Every path of a command job, built on the job's :class:`~orchestrator.core.paths.JobPaths`.

``{output_dir}`` is ``<home>/output`` on durable storage by default (the program writes its checkpoints there
directly), or ``<work>/output`` on fast local disk with ``local_output: true`` (checkpoints copied to the store
as they appear, restored from it on a blank machine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.paths import JobPaths


@dataclass(frozen=True)
class CommandPaths:
    job: JobPaths
    local_output: bool = False

    @property
    def output(self) -> Path:
        """The program's ``{output_dir}``."""
        return (self.job.work if self.local_output else self.job.home) / "output"

    def done_marker(self, done_when: str) -> Path:
        """The file whose existence means the program finished (``done_when``, relative to the output)."""
        return self.output / done_when
