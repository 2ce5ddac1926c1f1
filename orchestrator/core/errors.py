"""The one exception tree of orchestrator.

Every error a user can cause or fix derives from :class:`OrchestratorError`. The CLI prints these without a
traceback and exits with ``exit_code``; anything else is a bug and keeps its traceback. Foreign
exceptions are converted where they enter: ``raise StorageError(...) from exc``.

Exit codes (the only ones the CLI returns): 0 completed / ok; 75 paused or a storage fault (fix it if one is
named, then run the same command again: the job resumes); 2 bad job file, input or usage (nothing was changed);
3 another live session holds the job, or took it over from this one; 4 the job failed (``run --retry``).
"""

from __future__ import annotations

import errno
import os

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_LEASE = 3
EXIT_FAILED = 4
EXIT_RESUMABLE = 75  # EX_TEMPFAIL


class OrchestratorError(Exception):
    """Base of every expected, user-facing failure."""

    exit_code = EXIT_FAILED


class ConfigError(OrchestratorError):
    """The job file is missing, unreadable or invalid."""

    exit_code = 2


class StateError(OrchestratorError):
    """The job's persisted state forbids the request (illegal transition, failed job, corrupt state)."""

    exit_code = 4


class LeaseHeldError(StateError):
    """Another live session holds the job's lease."""

    exit_code = EXIT_LEASE


class LeaseLostError(StateError):
    """This session's lease was taken over by another session: it must stop writing at once."""

    exit_code = EXIT_LEASE


class CheckpointError(OrchestratorError):
    """A checkpoint is missing, invalid or cannot be restored."""


class StorageError(OrchestratorError):
    """A store (path or Drive API) or the job's home failed to list, read, write or delete.

    The job's state stays resumable: once the fault is fixed, the same command continues the job."""

    exit_code = EXIT_RESUMABLE


class StoreVanishedError(StorageError):
    """The store's folder disappeared mid-run (deleted, or the mount went away): retrying cannot help."""


class QuotaExceededError(StorageError):
    """The store refuses writes until a quota resets (e.g. Drive's daily upload cap); retrying won't help."""


class JobFailedError(OrchestratorError):
    """The job's work failed in a way restarting cannot fix (e.g. training diverged): the job is ``failed``; fix
    the named cause, then ``run --retry``."""

    exit_code = EXIT_FAILED


class BuildError(OrchestratorError):
    """Building or patching an external tool (darknet) failed."""


_FIXES = {
    errno.EROFS: "the folder is read-only: mount it writable (Colab: drive.mount('/content/drive')) or choose "
                 "another checkpoint_dir",
    errno.ENOSPC: "the disk is full: free space (empty Drive's trash, delete old job folders) and run again",
    errno.EDQUOT: "the storage quota is exhausted: free space and run again",
    errno.EACCES: "permission denied: make the folder writable or choose another checkpoint_dir",
    errno.EPERM: "permission denied: make the folder writable or choose another checkpoint_dir",
    errno.EIO: "input/output error (a flaky mount?): check the mount (Colab: remount Drive) and run again",
    errno.ENOENT: "it vanished (deleted or unmounted?): check the folder exists and run again",
    errno.ENOTCONN: "the mount is gone (transport endpoint not connected): remount it and run again",
}


def storage_error(exc: OSError, what: str = "") -> StorageError:
    """One clear line for a file-system fault: the path, what went wrong, and the fix."""
    path = exc.filename or ""
    reason = exc.strerror or os.strerror(exc.errno or 0) or type(exc).__name__
    fix = _FIXES.get(exc.errno or -1, "fix the storage and run the same command again")
    where = f" {what}" if what else ""
    return StorageError(f"storage fault{where}: {path}: {reason}; {fix}")
