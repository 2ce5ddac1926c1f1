"""Retention: which stored checkpoints to keep, written as a pure plan and a separate apply step.

Kept: the newest ``keep_last`` (by counter, never by time), every checkpoint whose counter is a multiple of
``milestone_every`` (the newest copy of each), and those tagged ``final``/``best``/``milestone``. Everything
else is deleted, but only after the newest checkpoint is confirmed in the store: records leave the manifest
first, then their objects are deleted (truncate + unlink on the mount), so a crash in between leaves at most
an orphan object, which the next run sweeps.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from checkpoints.manifest import CHECKPOINT_PREFIX, Manifest, ManifestRecord, ManifestStore
from checkpoints.store import StoreEntry
from orchestrator.core.logs import get_logger
from orchestrator.core.store_spec import RetentionSpec

log = get_logger(__name__)

_SEQ_IN_KEY = re.compile(r"/(\d{8})-[^/]+$")


@dataclass(frozen=True)
class RetentionPlan:
    keep: dict[str, str]  # key -> why it is kept
    delete: tuple[ManifestRecord, ...]
    orphans: tuple[str, ...] = ()  # store keys with no manifest record (an interrupted earlier delete)


def plan_retention(
    manifest: Manifest, policy: RetentionSpec, stored: list[StoreEntry] | None = None
) -> RetentionPlan:
    """Decide what to keep and delete. Pure: ``stored`` (a listing of the checkpoint prefix) finds orphans."""
    ordered = manifest.newest_first()
    keep: dict[str, str] = {}
    for record in ordered[: policy.keep_last]:
        keep[record.key] = f"one of the newest {policy.keep_last}"
    milestones_seen: set[int] = set()
    for record in ordered:
        reason = None
        if policy.keep_final and "final" in record.tags:
            reason = "tagged final"
        elif policy.keep_best and "best" in record.tags:
            reason = "tagged best"
        elif "milestone" in record.tags:
            reason = "tagged milestone"
        elif (
            policy.milestone_every
            and record.counter
            and record.counter % policy.milestone_every == 0
            and record.counter not in milestones_seen
        ):
            reason = f"milestone (counter {record.counter} is a multiple of {policy.milestone_every})"
        if record.counter is not None and policy.milestone_every and record.counter % policy.milestone_every == 0:
            milestones_seen.add(record.counter)
        if reason and record.key not in keep:
            keep[record.key] = reason
    delete = tuple(r for r in ordered if r.key not in keep)
    orphans: tuple[str, ...] = ()
    if stored is not None and manifest.records:
        newest_seq = max(r.seq for r in manifest.records)
        recorded = {r.key for r in manifest.records}
        orphans = tuple(
            sorted(
                e.key
                for e in stored
                if e.key.startswith(CHECKPOINT_PREFIX) and e.key not in recorded and _seq_of(e.key) < newest_seq
            )
        )
    return RetentionPlan(keep=keep, delete=delete, orphans=orphans)


def _seq_of(key: str) -> int:
    """Sequence number in a checkpoint key; keys of uploads still in flight have a higher one than any record."""
    match = _SEQ_IN_KEY.search(key)
    return int(match.group(1)) if match else 1 << 62


def apply_retention(
    manifests: ManifestStore,
    policy: RetentionSpec,
    sweep_orphans: bool = True,
    logger: logging.Logger | None = None,
) -> RetentionPlan:
    """Plan and carry out retention on ``manifests``' store; returns the plan that was applied.

    Nothing is deleted unless the newest recorded checkpoint is present in the store with its recorded size.
    """
    logger = logger or log
    store = manifests.store
    manifest = manifests.load()
    stored = store.list(CHECKPOINT_PREFIX) if sweep_orphans else None
    plan = plan_retention(manifest, policy, stored)
    if not plan.delete and not plan.orphans:
        return plan
    newest = manifest.newest_first()[0]
    entry = store.stat(newest.key)
    if entry is None or entry.size != newest.size:
        logger.warning("retention: newest checkpoint %s is not complete in %s; deleting nothing", newest.key, store)
        return RetentionPlan(keep=plan.keep, delete=())
    doomed = {r.key for r in plan.delete}
    if doomed:
        manifests.forget(doomed)
    for record in plan.delete:
        store.delete(record.key)
        logger.info("retention: deleted %s (counter %s)", record.key, record.counter)
    for key in plan.orphans:
        store.delete(key)
        logger.info("retention: deleted orphan %s (not in the manifest)", key)
    return plan
