"""Job kinds by their ``kind:`` name. Spec models are light (pydantic only); implementations are imported
lazily so a ``command`` job needs neither torch nor opencv."""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import ConfigError

#: kind -> (spec model "module:Class", implementation "module:Class", pip extra that provides its dependencies)
KINDS: dict[str, tuple[str, str, str | None]] = {
    "command": ("jobs.command.spec:CommandSpec", "jobs.command.job:CommandJob", None),
    "darknet": ("jobs.darknet.spec:DarknetSpec", "jobs.darknet.job:DarknetJob", "darknet"),
    "face_detection": ("jobs.face_detection.spec:FaceDetectionSpec", "jobs.face_detection.job:FaceDetectionJob", "face"),
}


def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def spec_models() -> list[type[BaseModel]]:
    return [_import(spec_ref) for spec_ref, _, _ in KINDS.values()]


def load_job_kind(kind: str) -> type:
    try:
        _, impl_ref, extra = KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown job kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}") from None
    try:
        return _import(impl_ref)
    except ImportError as exc:
        hint = f" (install it with: pip install 'orchestrator[{extra}]')" if extra else ""
        raise ConfigError(f"job kind {kind!r} needs {exc.name or exc}{hint}") from exc
