"""Every path of a job, built in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import StateError
from orchestrator.core.spec import JobSpecBase


@dataclass(frozen=True)
class JobPaths:
    """The job's home (durable, e.g. on Drive) and its local work folder (scratch, gone with the machine).

    ``work`` is None for paths built from a home folder alone (``status <folder>``): such paths reach the
    durable files only, and asking for the work folder says so.
    """

    home: Path
    local: Path | None = None

    @property
    def work(self) -> Path:
        if self.local is None:
            raise StateError(f"{self.home}: the job's local work folder is unknown here (paths from the home "
                             f"folder alone); give the job file instead")
        return self.local

    @classmethod
    def for_spec(cls, spec: JobSpecBase) -> JobPaths:
        return cls(home=spec.checkpoint_dir / spec.name, local=spec.work_dir / spec.name)

    @classmethod
    def for_home(cls, home: Path) -> JobPaths:
        """Paths of an existing job given only its home folder (status on a folder)."""
        return cls(home=home)

    # durable, in the job's home
    @property
    def state(self) -> Path:
        return self.home / "state.json"

    @property
    def state_prev(self) -> Path:
        return self.home / "state.prev.json"

    @property
    def journal(self) -> Path:
        return self.home / "journal.jsonl"

    @property
    def lease(self) -> Path:
        return self.home / "lease.json"

    @property
    def lease_lock(self) -> Path:
        return self.home / ".lease.lock"

    @property
    def spec_copy(self) -> Path:
        return self.home / "spec.json"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def store_root(self) -> Path:
        """Root of the job's path store (checkpoints, caches, manifests)."""
        return self.home / "store"

    @property
    def results(self) -> Path:
        """What the user takes away, with plain names (final weights, cfg, detections...): enough on its own."""
        return self.home / "results"

    @property
    def manifest_pin(self) -> Path:
        """Where the job home records its store manifest's address and revision (a lagging store waits on it)."""
        return self.home / "store-manifest.json"

    def session_log(self, session_index: int, session_id: str, what: str = "orchestrator") -> Path:
        return self.logs / f"session-{session_index:03d}-{session_id}.{what}.log"
