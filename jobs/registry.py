"""Job kinds by their ``kind:`` name: each kind is declared here once, and validation, ``schema`` and ``run``
follow from that declaration.

A declaration names the kind, its spec model, its implementation and the pip extra that provides its
dependencies. Built-in kinds are declared as ``"module:Class"`` references and imported lazily, so a ``command``
job needs neither torch nor opencv; a user's own kind may pass the classes themselves::

    from orchestrator import register_kind
    register_kind("lightning", spec=LightningSpec, implementation=LightningJob)

The spec model subclasses :class:`~orchestrator.core.spec.JobSpecBase` and does not repeat the name: the
registry routes a job file to the model by its ``kind:`` value.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.core.errors import ConfigError
from orchestrator.core.fields import JOB_NAME_PATTERN
from orchestrator.core.install import install_hint

if TYPE_CHECKING:
    from jobs.base import JobKind
    from orchestrator.core.spec import JobSpecBase

__all__ = ["REGISTRY", "KindEntry", "KindRegistry", "load_job_kind", "register_kind"]

def _import(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class KindEntry:
    """One job kind: its name, its spec model and implementation (classes or ``"module:Class"``), its extra."""

    name: str
    spec: str | type[JobSpecBase]
    implementation: str | type[JobKind]
    extra: str | None = None

    def spec_model(self) -> type[JobSpecBase]:
        model = _import(self.spec) if isinstance(self.spec, str) else self.spec
        return model  # type: ignore[no-any-return]

    def implementation_class(self) -> type[JobKind]:
        """The implementation; a missing optional dependency becomes a ConfigError with the install line."""
        if not isinstance(self.implementation, str):
            return self.implementation
        try:
            return _import(self.implementation)  # type: ignore[no-any-return]
        except ImportError as exc:
            hint = f" (install it with: {install_hint(self.extra)})" if self.extra else ""
            raise ConfigError(f"job kind {self.name!r} needs {exc.name or exc}{hint}") from exc


class KindRegistry:
    """The kinds known to this process. ``version`` changes with every registration (caches key on it)."""

    def __init__(self) -> None:
        self._entries: dict[str, KindEntry] = {}
        self.version = 0

    def register(self, name: str, *, spec: str | type[JobSpecBase], implementation: str | type[JobKind],
                 extra: str | None = None, replace: bool = False) -> KindEntry:
        import re

        if not re.fullmatch(JOB_NAME_PATTERN, name):
            raise ConfigError(f"job kind name {name!r}: use letters, digits, '.', '_' and '-'")
        if name in self._entries and not replace:
            raise ConfigError(f"job kind {name!r} is already registered; pass replace=True to replace it")
        entry = KindEntry(name, spec, implementation, extra)
        self._entries[name] = entry
        self.version += 1
        return entry

    def unregister(self, name: str) -> None:
        if self._entries.pop(name, None) is not None:
            self.version += 1

    def get(self, name: str) -> KindEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown job kind {name!r}; known kinds: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[KindEntry]:
        return iter(self._entries.values())


REGISTRY = KindRegistry()
REGISTRY.register("command", spec="jobs.command.spec:CommandSpec", implementation="jobs.command.job:CommandJob")
REGISTRY.register("darknet", spec="jobs.darknet.spec:DarknetSpec", implementation="jobs.darknet.job:DarknetJob",
                  extra="darknet")
REGISTRY.register("face_detection", spec="jobs.face_detection.spec:FaceDetectionSpec",
                  implementation="jobs.face_detection.job:FaceDetectionJob", extra="face")


def register_kind(name: str, *, spec: str | type[JobSpecBase], implementation: str | type[JobKind],
                  extra: str | None = None, replace: bool = False) -> KindEntry:
    """Declare a job kind: job files with ``kind: <name>`` validate against ``spec`` and run ``implementation``."""
    return REGISTRY.register(name, spec=spec, implementation=implementation, extra=extra, replace=replace)


def load_job_kind(kind: str) -> type[JobKind]:
    return REGISTRY.get(kind).implementation_class()
