"""orchestrator: resumable jobs for GPUs that vanish."""

from __future__ import annotations

from orchestrator.errors import (
    BuildError,
    CheckpointError,
    ConfigError,
    LeaseHeldError,
    OrchestratorError,
    QuotaExceededError,
    StateError,
    StorageError,
)

__all__ = [
    "BuildError",
    "CheckpointError",
    "ConfigError",
    "LeaseHeldError",
    "OrchestratorError",
    "QuotaExceededError",
    "StateError",
    "StorageError",
]
__version__ = "0.1.0"
