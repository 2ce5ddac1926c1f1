"""Checkpoint stores (path / Drive API), manifest, integrity, discovery, sync and retention.

The Drive API backend (``checkpoints.drive_store``) is not imported here: it needs the ``drive`` extra and is
opened through :func:`checkpoints.spec.open_store`. ``checkpoints.sync`` imports watchdog only when started.
"""

from __future__ import annotations

from checkpoints.discovery import (
    Candidate,
    CheckpointChoice,
    CheckpointRow,
    Judged,
    checkpoint_rows,
    find_latest_checkpoint,
    format_rows,
    judge_all,
)
from checkpoints.manifest import Manifest, ManifestRecord, ManifestStore, checkpoint_key
from checkpoints.memory_store import MemoryStore
from checkpoints.path_store import PathStore
from checkpoints.restore import ResumePoint, prepare_resume, restore_checkpoint
from checkpoints.retention import RetentionPlan, RetentionPolicy, apply_retention, plan_retention
from checkpoints.spec import DriveStoreSpec, PathStoreSpec, RetentionSpec, StoreSpec, open_store
from checkpoints.store import CheckpointStore, StoreEntry, check_key
from checkpoints.sync import CheckpointSync, SyncStatus
from checkpoints.validators import (
    AllOf,
    NonEmptyValidator,
    NotErrorPageValidator,
    RecordValidator,
    Validator,
    Verdict,
    file_sha256,
    generic_validator,
)

__all__ = [
    "AllOf",
    "Candidate",
    "CheckpointChoice",
    "CheckpointRow",
    "CheckpointStore",
    "CheckpointSync",
    "DriveStoreSpec",
    "Judged",
    "Manifest",
    "ManifestRecord",
    "ManifestStore",
    "MemoryStore",
    "NonEmptyValidator",
    "NotErrorPageValidator",
    "PathStore",
    "PathStoreSpec",
    "RecordValidator",
    "RetentionPlan",
    "RetentionPolicy",
    "RetentionSpec",
    "ResumePoint",
    "StoreEntry",
    "StoreSpec",
    "SyncStatus",
    "Validator",
    "Verdict",
    "apply_retention",
    "check_key",
    "checkpoint_key",
    "checkpoint_rows",
    "file_sha256",
    "find_latest_checkpoint",
    "format_rows",
    "generic_validator",
    "judge_all",
    "open_store",
    "plan_retention",
    "prepare_resume",
    "restore_checkpoint",
]
