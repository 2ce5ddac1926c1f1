"""Find the newest *valid* checkpoint across the store's manifest and the local work folder.

Candidates are ordered by their progress counter (e.g. darknet iteration), never by mtime: a copy restored
yesterday must not beat a newer checkpoint because its file is younger. Each candidate newer than the chosen
one is skipped with a logged reason (truncated, empty, an HTML page, missing from the store, ...), and the
search falls back down the list. The answer is a plain value (:class:`CheckpointChoice`); the
``orchestrator checkpoints`` listing is a pure function of judged candidates (:func:`checkpoint_rows`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from checkpoints.manifest import Manifest, ManifestRecord
from checkpoints.store import CheckpointStore
from checkpoints.validators import AllOf, RecordValidator, Validator, generic_validator
from orchestrator.core.atomic import is_temp_name
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

Where = Literal["store", "local"]
_NAME_COUNTER = re.compile(r"(\d+)(?=\.[^.]*$|$)")
DEFAULT_PATTERNS = ("*.weights", "*.backup", "*.pt", "*.pth", "*.ckpt")


@dataclass(frozen=True)
class Candidate:
    """A checkpoint that could be resumed from."""

    name: str
    where: Where
    counter: int | None
    size: int
    modified: float  # local mtime, or when it entered the manifest
    path: Path | None = None  # local file (where == "local")
    record: ManifestRecord | None = None  # manifest record (where == "store")

    @property
    def label(self) -> str:
        place = self.record.key if self.record else str(self.path)
        return f"{self.name} (counter {self.counter}, {self.where}: {place})"


@dataclass(frozen=True)
class Judged:
    candidate: Candidate
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class CheckpointChoice:
    """What resume would use, and the newer candidates skipped on the way (with reasons)."""

    chosen: Candidate | None
    skipped: tuple[Judged, ...] = ()

    def describe(self) -> str:
        if self.chosen is None:
            return "no valid checkpoint; starting from scratch"
        return f"resuming from {self.chosen.label}"


@dataclass(frozen=True)
class CheckpointRow:
    """One line of ``orchestrator checkpoints``."""

    name: str
    counter: int | None
    size: int
    age_seconds: float
    where: Where
    valid: bool
    reason: str
    resume: bool  # the one a resume would use
    key: str | None = None
    path: str | None = None


def counter_from_name(name: str) -> int | None:
    """The last number before the extension: ``micro_300.weights`` -> 300, ``micro.backup`` -> None."""
    match = _NAME_COUNTER.search(name)
    return int(match.group(1)) if match else None


def sort_key(candidate: Candidate) -> tuple[bool, int, bool, float]:
    """Newest first when sorted in reverse: by counter (unknown last), local before store on ties, then time."""
    return (candidate.counter is not None, candidate.counter or 0, candidate.where == "local", candidate.modified)


def order_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=sort_key, reverse=True)


# -- gathering and judging (I/O) ------------------------------------------------------------------------


def local_candidates(folder: Path | None, patterns: Sequence[str], validator: Validator) -> list[Judged]:
    """Checkpoint files in ``folder`` (recursive), each validated; the validator's counter wins over the name's."""
    if folder is None or not folder.is_dir():
        return []
    judged: list[Judged] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # staging and hidden folders
        for name in files:
            if is_temp_name(name) or name.startswith(".") or not any(fnmatch.fnmatch(name, p) for p in patterns):
                continue
            path = Path(root) / name
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            verdict = validator.validate(path)
            counter = verdict.counter if verdict.counter is not None else counter_from_name(name)
            cand = Candidate(
                name=name, where="local", counter=counter, size=st.st_size, modified=st.st_mtime, path=path
            )
            judged.append(Judged(cand, verdict.ok, verdict.reason))
    return judged


def store_candidates(manifest: Manifest) -> list[Candidate]:
    return [
        Candidate(name=r.name, where="store", counter=r.counter, size=r.size, modified=r.created, record=r)
        for r in manifest.records
    ]


def judge_store_candidate(store: CheckpointStore, candidate: Candidate, validator: Validator) -> Judged:
    """Cheap checks of a stored checkpoint: present with the recorded size; format-valid if readable in place.

    The sha256 is checked when the checkpoint is restored (``checkpoints.restore``), not here.
    """
    record = candidate.record
    assert record is not None
    if record.size == 0:
        return Judged(candidate, False, f"{record.name} is empty (0 bytes) in the manifest")
    entry = store.stat(record.key)
    if entry is None:
        return Judged(candidate, False, f"{record.key} is listed in the manifest but missing from the store")
    if entry.size != record.size:
        return Judged(
            candidate, False, f"{record.key} has {entry.size} bytes in the store but the manifest records {record.size}"
        )
    local = store.local_path(record.key)
    if local is not None:
        verdict = AllOf([RecordValidator(record.size), validator]).validate(local)
        if not verdict.ok:
            return Judged(candidate, False, verdict.reason)
    return Judged(candidate, True)


def _judge_in_order(
    store: CheckpointStore | None, manifest: Manifest, local: list[Judged], validator: Validator
) -> Iterator[Judged]:
    by_id = {id(j.candidate): j for j in local}
    candidates = order_candidates([j.candidate for j in local] + store_candidates(manifest))
    for cand in candidates:
        if cand.where == "local":
            yield by_id[id(cand)]
        elif store is None:
            yield Judged(cand, False, "the store is not available")
        else:
            yield judge_store_candidate(store, cand, validator)


def find_latest_checkpoint(
    store: CheckpointStore | None,
    manifest: Manifest,
    local_dir: Path | None = None,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    validator: Validator | None = None,
    exclude: Iterable[str] = (),
    logger: logging.Logger | None = None,
) -> CheckpointChoice:
    """The newest valid checkpoint by counter, falling back past invalid ones (each logged with its reason).

    ``validator`` is the format check (e.g. darknet weights); the generic checks (non-empty, not an error page)
    always run first. ``exclude`` holds store keys or local paths already found bad (e.g. failed restore).
    """
    logger = logger or log
    check = generic_validator(validator)
    excluded = set(exclude)
    skipped: list[Judged] = []
    local = local_candidates(local_dir, patterns, check)
    for judged in _judge_in_order(store, manifest, local, check):
        cand = judged.candidate
        ident = cand.record.key if cand.record else str(cand.path)
        if ident in excluded:
            judged = replace(judged, ok=False, reason=judged.reason or "rejected earlier in this resume")
        if judged.ok:
            logger.info("checkpoint: using %s", cand.label)
            return CheckpointChoice(cand, tuple(skipped))
        logger.warning("checkpoint: skipping %s: %s", cand.label, judged.reason)
        skipped.append(judged)
    logger.info("checkpoint: no valid checkpoint found (%d candidates skipped)", len(skipped))
    return CheckpointChoice(None, tuple(skipped))


def judge_all(
    store: CheckpointStore | None,
    manifest: Manifest,
    local_dir: Path | None = None,
    patterns: Sequence[str] = DEFAULT_PATTERNS,
    validator: Validator | None = None,
) -> list[Judged]:
    """Every candidate, newest first, judged (for the listing)."""
    check = generic_validator(validator)
    return list(_judge_in_order(store, manifest, local_candidates(local_dir, patterns, check), check))


# -- listing (pure) -------------------------------------------------------------------------------------


def checkpoint_rows(judged: Sequence[Judged], now: float | None = None) -> list[CheckpointRow]:
    """Rows for ``orchestrator checkpoints``, newest first; the first valid one is what resume would use."""
    now = time.time() if now is None else now
    ordered = sorted(judged, key=lambda j: sort_key(j.candidate), reverse=True)
    resume_index = next((i for i, j in enumerate(ordered) if j.ok), None)
    rows = []
    for i, j in enumerate(ordered):
        c = j.candidate
        rows.append(
            CheckpointRow(
                name=c.name,
                counter=c.counter,
                size=c.size,
                age_seconds=max(0.0, now - c.modified),
                where=c.where,
                valid=j.ok,
                reason=j.reason,
                resume=i == resume_index,
                key=c.record.key if c.record else None,
                path=str(c.path) if c.path else None,
            )
        )
    return rows


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _human_age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_rows(rows: Sequence[CheckpointRow]) -> str:
    """A plain-text table of the listing (``*`` marks the checkpoint a resume would use)."""
    if not rows:
        return "no checkpoints"
    lines = [f"  {'name':<32} {'counter':>8} {'size':>9} {'age':>6} {'where':<5}  status"]
    for r in rows:
        status = "valid" if r.valid else f"invalid: {r.reason}"
        counter = "-" if r.counter is None else str(r.counter)
        mark = "*" if r.resume else " "
        lines.append(
            f"{mark} {r.name:<32} {counter:>8} {_human_size(r.size):>9} {_human_age(r.age_seconds):>6} {r.where:<5}  {status}"
        )
    return "\n".join(lines)
