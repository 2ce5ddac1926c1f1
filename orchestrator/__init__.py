"""orchestrator: resumable jobs for GPUs that vanish.

The public API (see docs/api.md)::

    import orchestrator
    result = orchestrator.run("job.yaml")      # RunResult: .state (JobState), .exit_code, .reason
    report = orchestrator.status("job.yaml")   # StatusReport; .to_dict() is what `status --json` prints
    spec = orchestrator.load_job("job.yaml")
    orchestrator.register_kind("mine", spec=MySpec, implementation=MyJob)

Names are resolved lazily (PEP 562): ``import orchestrator`` stays light, and a ``command`` job never imports
torch, opencv or the Google client libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.lazy import lazy_exports

if TYPE_CHECKING:
    from checkpoints.memory_store import MemoryStore
    from checkpoints.path_store import PathStore
    from checkpoints.store import CheckpointStore, StoreEntry
    from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Step, Stopped
    from jobs.registry import register_kind
    from orchestrator.app.api import load_job, run, status
    from orchestrator.app.runner import RunResult
    from orchestrator.app.status import StatusReport
    from orchestrator.core.errors import (
        BuildError,
        CheckpointError,
        ConfigError,
        LeaseHeldError,
        OrchestratorError,
        QuotaExceededError,
        StateError,
        StorageError,
    )
    from orchestrator.core.paths import JobPaths
    from orchestrator.core.spec import JobSpecBase
    from orchestrator.core.state import JobState
    from orchestrator.core.store_spec import DriveStoreSpec, PathStoreSpec, RetentionSpec

_EXPORTS: dict[str, str] = {
    "run": "orchestrator.app.api",
    "status": "orchestrator.app.api",
    "load_job": "orchestrator.app.api",
    "RunResult": "orchestrator.app.runner",
    "StatusReport": "orchestrator.app.status",
    "register_kind": "jobs.registry",
    "JobKind": "jobs.base",
    "JobContext": "jobs.base",
    "Step": "jobs.base",
    "Completed": "jobs.base",
    "Stopped": "jobs.base",
    "Crashed": "jobs.base",
    "RunOutcome": "jobs.base",
    "JobState": "orchestrator.core.state",
    "JobSpecBase": "orchestrator.core.spec",
    "JobPaths": "orchestrator.core.paths",
    "CheckpointStore": "checkpoints.store",
    "StoreEntry": "checkpoints.store",
    "PathStore": "checkpoints.path_store",
    "MemoryStore": "checkpoints.memory_store",
    "PathStoreSpec": "orchestrator.core.store_spec",
    "DriveStoreSpec": "orchestrator.core.store_spec",
    "RetentionSpec": "orchestrator.core.store_spec",
    "OrchestratorError": "orchestrator.core.errors",
    "ConfigError": "orchestrator.core.errors",
    "StateError": "orchestrator.core.errors",
    "CheckpointError": "orchestrator.core.errors",
    "StorageError": "orchestrator.core.errors",
    "QuotaExceededError": "orchestrator.core.errors",
    "BuildError": "orchestrator.core.errors",
    "LeaseHeldError": "orchestrator.core.errors",
}

__all__ = [
    "BuildError",
    "CheckpointError",
    "CheckpointStore",
    "Completed",
    "ConfigError",
    "Crashed",
    "DriveStoreSpec",
    "JobContext",
    "JobKind",
    "JobPaths",
    "JobSpecBase",
    "JobState",
    "LeaseHeldError",
    "MemoryStore",
    "OrchestratorError",
    "PathStore",
    "PathStoreSpec",
    "QuotaExceededError",
    "RetentionSpec",
    "RunOutcome",
    "RunResult",
    "StateError",
    "StatusReport",
    "Step",
    "Stopped",
    "StorageError",
    "StoreEntry",
    "load_job",
    "register_kind",
    "run",
    "status",
]
__version__ = "0.1.0"


__getattr__, __dir__ = lazy_exports("orchestrator", globals(), _EXPORTS)
