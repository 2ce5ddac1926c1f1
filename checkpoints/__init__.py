"""Checkpoint stores (path / Drive API), manifest, integrity, discovery, sync and retention.

Public names are re-exported lazily (PEP 562), so importing a light module such as ``checkpoints.spec`` does not import watchdog or the stores. The Drive API backend
(``checkpoints.drive_store``) is never imported here: it needs the ``drive`` extra and is opened through
:func:`checkpoints.spec.open_store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.lazy import lazy_exports

if TYPE_CHECKING:
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
    from checkpoints.job_checkpoints import (
        JobCheckpoints,
        rows_as_json,
    )
    from checkpoints.manifest import (
        Backoff,
        Manifest,
        ManifestRecord,
        ManifestStore,
        checkpoint_key,
    )
    from checkpoints.manifest_pin import (
        ManifestPin,
    )
    from checkpoints.memory_store import (
        MemoryStore,
    )
    from checkpoints.path_store import (
        PathStore,
    )
    from checkpoints.restore import (
        ResumePoint,
        prepare_resume,
        restore_checkpoint,
    )
    from checkpoints.retention import (
        RetentionPlan,
        apply_retention,
        plan_retention,
    )
    from checkpoints.spec import (
        open_store,
    )
    from checkpoints.store import (
        CheckpointStore,
        StoreEntry,
        check_key,
    )
    from checkpoints.sync import (
        CheckpointSync,
        SyncStatus,
    )
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
    from orchestrator.core.store_spec import (
        DriveStoreSpec,
        PathStoreSpec,
        RetentionSpec,
        StoreSpec,
    )

_EXPORTS: dict[str, str] = {
    "AllOf": "checkpoints.validators",
    "Candidate": "checkpoints.discovery",
    "CheckpointChoice": "checkpoints.discovery",
    "CheckpointRow": "checkpoints.discovery",
    "CheckpointStore": "checkpoints.store",
    "CheckpointSync": "checkpoints.sync",
    "DriveStoreSpec": "orchestrator.core.store_spec",
    "JobCheckpoints": "checkpoints.job_checkpoints",
    "Judged": "checkpoints.discovery",
    "Backoff": "checkpoints.manifest",
    "Manifest": "checkpoints.manifest",
    "ManifestPin": "checkpoints.manifest_pin",
    "ManifestRecord": "checkpoints.manifest",
    "ManifestStore": "checkpoints.manifest",
    "MemoryStore": "checkpoints.memory_store",
    "NonEmptyValidator": "checkpoints.validators",
    "NotErrorPageValidator": "checkpoints.validators",
    "PathStore": "checkpoints.path_store",
    "PathStoreSpec": "orchestrator.core.store_spec",
    "RecordValidator": "checkpoints.validators",
    "ResumePoint": "checkpoints.restore",
    "RetentionPlan": "checkpoints.retention",
    "RetentionSpec": "orchestrator.core.store_spec",
    "StoreEntry": "checkpoints.store",
    "StoreSpec": "orchestrator.core.store_spec",
    "SyncStatus": "checkpoints.sync",
    "Validator": "checkpoints.validators",
    "Verdict": "checkpoints.validators",
    "apply_retention": "checkpoints.retention",
    "check_key": "checkpoints.store",
    "checkpoint_key": "checkpoints.manifest",
    "checkpoint_rows": "checkpoints.discovery",
    "file_sha256": "checkpoints.validators",
    "find_latest_checkpoint": "checkpoints.discovery",
    "format_rows": "checkpoints.discovery",
    "generic_validator": "checkpoints.validators",
    "judge_all": "checkpoints.discovery",
    "open_store": "checkpoints.spec",
    "plan_retention": "checkpoints.retention",
    "prepare_resume": "checkpoints.restore",
    "restore_checkpoint": "checkpoints.restore",
    "rows_as_json": "checkpoints.job_checkpoints",
}

__all__ = [
    "AllOf",
    "Backoff",
    "Candidate",
    "CheckpointChoice",
    "CheckpointRow",
    "CheckpointStore",
    "CheckpointSync",
    "DriveStoreSpec",
    "JobCheckpoints",
    "Judged",
    "Manifest",
    "ManifestPin",
    "ManifestRecord",
    "ManifestStore",
    "MemoryStore",
    "NonEmptyValidator",
    "NotErrorPageValidator",
    "PathStore",
    "PathStoreSpec",
    "RecordValidator",
    "ResumePoint",
    "RetentionPlan",
    "RetentionSpec",
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
    "rows_as_json",
]


__getattr__, __dir__ = lazy_exports("checkpoints", globals(), _EXPORTS)
