"""One job's checkpoint machinery in one object: what the runner and the CLI call.

    cps = JobCheckpoints.open(spec.store, spec.retention, paths, session_id, output_dir=paths.work / "backup",
                              patterns=("*.weights", "*.backup"), validator=DarknetWeightsValidator(cfg))
    point = cps.resume()                    # newest valid checkpoint, restored locally (or None: from scratch)
    cps.start_sync(on_published=lambda r: ctx.report_checkpoint(r.name, r.counter))
    ...                                     # the job trains, writing into output_dir
    cps.stop_sync(flush_timeout=300)        # clean stop: publish what is pending, then release the lease
    rows = cps.rows()                       # `orchestrator checkpoints`

Retention is part of every publish: the manifest write that records the new checkpoint also drops what the
policy retires, and those objects are deleted after it. Orphans (a session killed between the two) are swept
by the retention pass at the start of the next session.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from checkpoints.discovery import DEFAULT_PATTERNS, CheckpointRow, checkpoint_rows, judge_all
from checkpoints.manifest import ManifestRecord, ManifestStore
from checkpoints.manifest_pin import ManifestPin
from checkpoints.restore import ResumePoint, prepare_resume
from checkpoints.retention import apply_retention, plan_retention
from checkpoints.store import CheckpointStore
from checkpoints.sync import CheckpointSync, SyncStatus
from checkpoints.validators import Validator, generic_validator
from orchestrator.core.errors import CheckpointError, OrchestratorError
from orchestrator.core.logs import get_logger
from orchestrator.core.store_spec import DriveStoreSpec, PathStoreSpec, RetentionSpec

if TYPE_CHECKING:
    from orchestrator.core.paths import JobPaths

log = get_logger(__name__)


class JobCheckpoints:
    """Store + manifest + resume + live sync + retention + listing for one job and session."""

    def __init__(
        self,
        store: CheckpointStore,
        output_dir: Path,
        session_id: str = "",
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        validator: Validator | None = None,
        retention: RetentionSpec | None = None,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        pin: ManifestPin | None = None,
    ) -> None:
        self.store = store
        self.output_dir = Path(output_dir)
        self.patterns = tuple(patterns)
        self.validator = validator
        self.retention = retention or RetentionSpec()
        self.log = logger or log
        self.manifests = ManifestStore(
            store, session=session_id, clock=clock, pin=pin, retire=lambda m: plan_retention(m, self.retention).delete
        )
        self._sync: CheckpointSync | None = None

    @classmethod
    def open(
        cls,
        store_spec: PathStoreSpec | DriveStoreSpec | None,
        retention_spec: RetentionSpec | None,
        paths: JobPaths,
        session_id: str,
        output_dir: Path,
        patterns: Sequence[str] = DEFAULT_PATTERNS,
        validator: Validator | None = None,
        logger: logging.Logger | None = None,
    ) -> JobCheckpoints:
        from checkpoints.spec import open_store

        return cls(
            open_store(store_spec, paths),
            output_dir,
            session_id=session_id,
            patterns=patterns,
            validator=validator,
            retention=retention_spec,
            logger=logger,
            pin=ManifestPin(paths.manifest_pin),
        )

    # -- resume --------------------------------------------------------------------------------------------

    def resume(self, restore_dir: Path | None = None) -> ResumePoint | None:
        """The newest valid checkpoint as a local file (restored from the store if needed), or None.

        Call it at session start while holding the job's lease: it also checks the store is usable and sweeps
        partial objects left by a writer that was killed mid-copy."""
        self.store.check_usable()
        self.manifests.load()  # first: a store behind the job home's record stops the session here
        swept = self.store.sweep_leftovers()
        if swept:
            self.log.info("checkpoint: removed %d partial object(s) left by an interrupted copy", swept)
        try:  # objects a killed session uploaded or retired but never recorded or deleted
            apply_retention(self.manifests, self.retention, logger=self.log)
        except OrchestratorError as exc:
            self.log.warning("retention at session start failed (retried next session): %s", exc)
        point = prepare_resume(
            self.store,
            self.manifests.load(),
            self.output_dir,
            restore_dir=restore_dir,
            patterns=self.patterns,
            validator=self.validator,
            logger=self.log,
        )
        if point is None:
            self.log.info(
                "checkpoint: no valid checkpoint in %s or %s; starting from scratch", self.store, self.output_dir
            )
        return point

    # -- live sync -----------------------------------------------------------------------------------------

    def start_sync(
        self,
        on_published: Callable[[ManifestRecord], None] | None = None,
        on_paused: Callable[[str, float], None] | None = None,
        **options: float,
    ) -> CheckpointSync:
        """Start copying new checkpoints from ``output_dir`` to the store (``options``: poll_interval, ...)."""
        if self._sync is not None:
            raise CheckpointError(f"checkpoint sync of {self.output_dir} is already running")

        self._sync = CheckpointSync(
            self.output_dir,
            self.manifests,
            self.patterns,
            self.validator,
            on_published=on_published,
            on_paused=on_paused,
            logger=self.log,
            **options,  # type: ignore[arg-type]
        ).start()
        return self._sync

    def stop_sync(self, flush_timeout: float | None = 300.0) -> bool:
        """Stop the sync; with a timeout, publish pending checkpoints first. False if the flush timed out."""
        if self._sync is None:
            return True
        sync, self._sync = self._sync, None
        return sync.stop(flush_timeout)

    def sync_status(self) -> SyncStatus | None:
        return None if self._sync is None else self._sync.status()

    def publish(self, path: Path, counter: int | None, tags: tuple[str, ...] = ()) -> ManifestRecord:
        """Publish one file now (e.g. the final weights, tagged ``final``), after validating it."""
        verdict = generic_validator(self.validator).validate(path)
        if not verdict.ok:
            raise CheckpointError(f"not publishing {path}: {verdict.reason}")
        counter = verdict.counter if verdict.counter is not None else counter
        return self.manifests.publish(path, path.name, counter, tags=tags, retain=False)

    # -- listing -------------------------------------------------------------------------------------------

    def rows(self, now: float | None = None) -> list[CheckpointRow]:
        """Rows of ``orchestrator checkpoints``: every stored and local checkpoint, judged, newest first."""
        judged = judge_all(self.store, self.manifests.load(), self.output_dir, self.patterns, self.validator)
        return checkpoint_rows(judged, now)


def rows_as_json(rows: Sequence[CheckpointRow]) -> list[dict[str, object]]:
    """``orchestrator checkpoints --json``."""
    return [dataclasses.asdict(row) for row in rows]
