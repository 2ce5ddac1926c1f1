"""Job spec models shared by every job kind: the fields every ``job.yaml`` has.

Each job kind subclasses :class:`JobSpecBase` with ``kind: Literal["<name>"]`` and registers in
``jobs.registry``; the loader (``orchestrator.jobfile``) validates a file against the union of all kinds.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, ValidationInfo

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def expand_env(text: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; an unset variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        var, default = match.group(1), match.group(2)
        value = os.environ.get(var)
        if value is None:
            if default is None:
                raise ValueError(f"environment variable {var} is not set (write ${{{var}:-default}} for a fallback)")
            return default
        return value

    return _ENV_RE.sub(substitute, text)


def _expand_path(value: Any, info: ValidationInfo) -> Any:
    """Expand ``~`` and ``${ENV}``; a relative path is taken relative to the job file's folder."""
    if isinstance(value, (str, Path)):
        path = Path(os.path.expanduser(expand_env(str(value))))
        base = (info.context or {}).get("base_dir") if info is not None else None
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        return path
    return value


def _parse_duration(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '90s', '30m', '12h'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ValueError(f"expected a duration such as 90, '90s', '30m', '12h', got {value!r}")
        return float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    return value


#: A filesystem path with ``~`` and ``${ENV}`` expanded.
ExpandedPath = Annotated[Path, BeforeValidator(_expand_path), PlainSerializer(str, return_type=str)]
#: Seconds, written as a number or with a unit: ``90``, ``"90s"``, ``"30m"``, ``"12h"``, ``"1d"``.
Duration = Annotated[float, BeforeValidator(_parse_duration), Field(ge=0)]

JOB_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class StrictModel(BaseModel):
    """Base for every spec model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SessionSpec(StrictModel):
    """How long a machine lives and how we share the job with other machines."""

    budget: Duration = Field(12 * 3600.0, description="Session budget (Colab 12h, Kaggle 9h, ...).")
    margin: Duration = Field(15 * 60.0, description="Stop this long before the budget runs out.")
    clock: str = Field(
        "auto",
        pattern="^(auto|boot|process)$",
        description="Measure the session's age from machine boot (Colab VM), process start, or auto-detect.",
    )
    lease_ttl: Duration = Field(
        600.0, description="A lease whose heartbeat is older than this is stale and taken over."
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
