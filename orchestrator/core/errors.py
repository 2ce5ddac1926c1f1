"""The one exception tree of orchestrator.

Every error a user can cause or fix derives from :class:`OrchestratorError`. The CLI prints these without a
traceback and exits non-zero (``exit_code``); anything else is a bug and keeps its traceback. Foreign
exceptions are converted where they enter: ``raise StorageError(...) from exc``.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base of every expected, user-facing failure."""

    exit_code = 1


class ConfigError(OrchestratorError):
    """The job file is missing, unreadable or invalid."""

    exit_code = 2


class StateError(OrchestratorError):
    """The job's persisted state forbids the request (illegal transition, failed job, corrupt state)."""

    exit_code = 4


class LeaseHeldError(StateError):
    """Another live session holds the job's lease."""

    exit_code = 3


class CheckpointError(OrchestratorError):
    """A checkpoint is missing, invalid or cannot be restored."""


class StorageError(OrchestratorError):
    """A store (path or Drive API) failed to list, read, write or delete."""


class QuotaExceededError(StorageError):
    """The store refuses writes until a quota resets (e.g. Drive's daily upload cap); retrying won't help."""


class BuildError(OrchestratorError):
    """Building or patching an external tool (darknet) failed."""
