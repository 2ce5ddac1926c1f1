"""Field types shared by every spec model (job files and store sections): strict models, paths with
``~``/``${ENV}`` expansion, and durations such as ``"12h"``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
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
            path = Path(os.path.normpath(Path(base) / path))  # lexical: keeps symlinks such as /WORK1
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


def type_with_default(default: str) -> Callable[[Any], str]:
    """A pydantic ``Discriminator`` callable for a section whose ``type:`` may be omitted (then ``default``)."""

    def section_type(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get("type", default))
        return str(getattr(value, "type", default))

    return section_type
