"""Job spec models shared by every job kind: the fields every ``job.yaml`` has.

Each job kind subclasses :class:`JobSpecBase` with ``kind: Literal["<name>"]`` and registers in
``jobs.registry``; the loader (``orchestrator.app.jobfile``) validates a file against the union of all kinds.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from orchestrator.core.fields import (
    JOB_NAME_PATTERN,
    Duration,
    ExpandedPath,
    StrictModel,
    expand_env,
)
from orchestrator.core.store_spec import RetentionSpec, StoreSpec, default_store_spec

__all__ = [
    "DEFAULT_LEASE_TTL",
    "JOB_NAME_PATTERN",
    "Duration",
    "ExpandedPath",
    "JobSpecBase",
    "RestartSpec",
    "SessionSpec",
    "StrictModel",
    "expand_env",
]


#: Seconds after its last heartbeat that a lease counts as stale (``session.lease_ttl``'s default).
DEFAULT_LEASE_TTL = 600.0


class SessionSpec(StrictModel):
    """How long a machine lives and how we share the job with other machines."""

    budget: Duration = Field(12 * 3600.0, description="Session budget (Colab ~12h, Kaggle 12h: ~30 GPU-h a week).")
    margin: Duration = Field(15 * 60.0, description="Stop this long before the budget runs out.")
    clock: str = Field(
        "auto",
        pattern="^(auto|boot|process)$",
        description="Measure the session's age from machine boot (Colab VM), process start, or auto-detect.",
    )
    lease_ttl: Duration = Field(
        DEFAULT_LEASE_TTL, description="A lease whose heartbeat is older than this is stale and taken over."
    )
    heartbeat: Duration = Field(30.0, description="How often the lease heartbeat is renewed.")


class RestartSpec(StrictModel):
    """What to do when the job's process crashes."""

    max_restarts: int = Field(3, ge=0, description="Restarts in one session before the job is failed.")
    backoff: Duration = Field(10.0, description="First wait before a restart; doubles each time.")
    backoff_max: Duration = Field(600.0, description="Longest wait between restarts.")


def default_work_dir() -> Path:
    """Local scratch disk: fast, but gone with the machine."""
    if Path("/content").is_dir() and os.access("/content", os.W_OK):
        return Path("/content/orchestrator-work")
    return Path(tempfile.gettempdir()) / "orchestrator-work"


def _expand_str(value: object) -> object:
    return expand_env(value) if isinstance(value, str) else value


class JobSpecBase(StrictModel):
    """Fields every job kind has."""

    name: str = Field(pattern=JOB_NAME_PATTERN, description="Job name; its home is <checkpoint_dir>/<name>.")
    kind: str
    checkpoint_dir: ExpandedPath = Field(description="Durable folder (e.g. the Drive mount) holding job homes.")
    work_dir: ExpandedPath = Field(
        default_factory=default_work_dir, description="Local scratch folder; the job uses <work_dir>/<name>."
    )
    session: SessionSpec = Field(default_factory=SessionSpec)
    restart: RestartSpec = Field(default_factory=RestartSpec)
    store: StoreSpec = Field(default_factory=default_store_spec,
                             description="Where checkpoints are kept (default: a path store in the job home).")
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    notify: list[Annotated[str, BeforeValidator(_expand_str), Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")]] = Field(
        default_factory=list,
        description="Apprise URLs told when a session pauses, fails or completes (tgram://, discord://, "
                    "mailto://, ntfys://, json://...; ${VAR} reads a secret from the environment; "
                    "needs the [notify] extra).")
