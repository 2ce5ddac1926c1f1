"""Restore at resume: bring the chosen checkpoint to local disk, verified, and train from the local copy.

:func:`restore_checkpoint` downloads one stored checkpoint atomically and checks size, sha256 (against the
manifest) and format (the job kind's validator); a copy that fails is removed and CheckpointError raised.
:func:`prepare_resume` is the one resume decision: find the newest valid checkpoint, restore it if it is in the
store, and fall back to the next one when a restore fails.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from checkpoints.discovery import DEFAULT_PATTERNS, Candidate, CheckpointChoice, Judged, find_latest_checkpoint
from checkpoints.manifest import Manifest, ManifestRecord
from checkpoints.store import CheckpointStore
from checkpoints.validators import AllOf, RecordValidator, Validator, generic_validator
from orchestrator.core.errors import CheckpointError, StorageError
from orchestrator.core.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class ResumePoint:
    """The local file to resume from and how it was chosen."""

    path: Path
    candidate: Candidate
    choice: CheckpointChoice
    restored: bool  # True when it was copied from the store in this call


def restore_checkpoint(
    store: CheckpointStore, record: ManifestRecord, dest: Path, validator: Validator | None = None
) -> Path:
    """Download ``record`` to ``dest`` and verify size + sha256 + format; returns ``dest``.

    The copy is verified under a hidden temp name and only then renamed over ``dest``, so a failed or
    interrupted restore leaves the previous local file (or nothing).
    """
    staged = dest.with_name(f".{dest.name}.restore-{os.getpid()}")  # hidden: discovery ignores it
    try:
        try:
            store.download(record.key, staged)
        except StorageError as exc:
            raise CheckpointError(f"cannot restore checkpoint {record.name} ({record.key}) to {dest}: {exc}") from exc
        checks: list[Validator] = [RecordValidator(record.size, record.sha256), generic_validator(validator)]
        verdict = AllOf(checks).validate(staged)
        if not verdict.ok:
            raise CheckpointError(
                f"restored checkpoint {record.name} ({record.key}) is not valid: "
                f"{verdict.reason.replace(staged.name, record.name)}; the local copy was discarded"
            )
        os.replace(staged, dest)
    finally:
        staged.unlink(missing_ok=True)
    log.info("restored checkpoint %s (counter %s, %d bytes) to %s", record.name, record.counter, record.size, dest)
    return dest


def prepare_resume(
    store: CheckpointStore | None,
    manifest: Manifest,
    local_dir: Path,
    restore_dir: Path | None = None,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    validator: Validator | None = None,
    logger: logging.Logger | None = None,
    max_attempts: int = 10,
) -> ResumePoint | None:
    """Choose the newest valid checkpoint and make it available locally; None when there is none.

    A stored checkpoint is restored into ``restore_dir`` (default: ``local_dir``) under its own name; if the
    download or verification fails it is excluded and the next candidate is tried.
    """
    logger = logger or log
    restore_dir = restore_dir or local_dir
    excluded: list[str] = []
    failures: list[Judged] = []
    for _ in range(max_attempts):
        choice = find_latest_checkpoint(store, manifest, local_dir, patterns, validator, excluded, logger)
        choice = CheckpointChoice(choice.chosen, tuple(failures) + choice.skipped)
        cand = choice.chosen
        if cand is None:
            return None
        if cand.where == "local":
            assert cand.path is not None
            return ResumePoint(cand.path, cand, choice, restored=False)
        assert cand.record is not None and store is not None
        dest = restore_dir / cand.name
        try:
            restore_checkpoint(store, cand.record, dest, validator)
        except CheckpointError as exc:
            logger.warning("checkpoint: restore of %s failed, trying the next one: %s", cand.label, exc)
            excluded.append(cand.record.key)
            failures.append(Judged(cand, False, str(exc)))
            continue
        return ResumePoint(dest, cand, choice, restored=True)
    raise CheckpointError(
        f"gave up restoring after {max_attempts} failed checkpoints from {store}; check the store's health"
    )
