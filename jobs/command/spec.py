"""``kind: command`` job file fields."""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from orchestrator.core.spec import Duration, ExpandedPath, JobSpecBase, StrictModel

#: Placeholders available in ``command``, ``resume_args`` and ``env`` values.
#: ``{python}`` is the interpreter running orchestrator (the notebook's or venv's python).
PLACEHOLDERS = ("output_dir", "latest_checkpoint", "job_dir", "work_dir", "name", "session_id", "python")


def check_placeholders(text: str) -> str:
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise ValueError(f"{exc} in {text!r} (write {{{{ and }}}} for literal braces)") from None
    unknown = [f for f in fields if f not in PLACEHOLDERS]
    if unknown:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; available: "
                         + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    return text


class ProgressPattern(StrictModel):
    """Read progress from the program's output: a regex with named groups ``counter`` and optionally ``total``."""

    pattern: str = Field(description=r"e.g. 'step (?P<counter>\d+)/(?P<total>\d+)'")
    total: int | None = Field(None, ge=1, description="Total, when the output does not print it.")
    unit: str = "it"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if "counter" not in compiled.groupindex:
            raise ValueError("the pattern needs a named group (?P<counter>\\d+)")
        return value


class CommandSpec(JobSpecBase):
    """Run any command (argv list, no shell) that saves checkpoints into ``{output_dir}``."""

    command: list[str] = Field(min_length=1, description="argv; placeholders: " + ", ".join(PLACEHOLDERS))
    resume_args: list[str] = Field(
        default_factory=list,
        description="Appended to the command only when a checkpoint exists, e.g. ['--resume', '{latest_checkpoint}'].",
    )
    checkpoints: str | None = Field(None, description="Glob of checkpoint files inside {output_dir}, e.g. 'ckpt-*.pt'.")
    done_when: str | None = Field(None, description="A file inside {output_dir} whose existence means finished.")
    progress: ProgressPattern | None = None
    cwd: ExpandedPath | None = Field(None, description="Working folder; default: the job file's folder.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    local_output: bool = Field(
        False,
        description="Put {output_dir} on local disk and copy checkpoints to the store as they appear (faster "
        "than writing to the Drive mount; a truncated write never reaches the store).",
    )
    echo_output: bool = Field(True, description="Show the program's output in the console (always kept in logs/).")
    stop_signal: Literal["SIGTERM", "SIGINT"] = Field("SIGTERM", description="Sent to ask the program to stop.")
    stop_timeout: Duration = Field(60.0, description="Wait this long after stop_signal before SIGKILL.")

    @field_validator("command", "resume_args")
    @classmethod
    def _placeholders(cls, values: list[str]) -> list[str]:
        for value in values:
            check_placeholders(value)
        return values

    @field_validator("env")
    @classmethod
    def _env_placeholders(cls, values: dict[str, str]) -> dict[str, str]:
        for value in values.values():
            check_placeholders(value)
        return values

    @field_validator("checkpoints", "done_when")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/")):
            raise ValueError("must be relative to {output_dir} (no leading / or ..)")
        return value

    @model_validator(mode="after")
    def _default_cwd(self, info: ValidationInfo) -> CommandSpec:
        if self.cwd is None:
            base = (info.context or {}).get("base_dir")
            self.cwd = Path(base) if base is not None else Path.cwd()
        return self
