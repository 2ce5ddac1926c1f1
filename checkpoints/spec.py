"""Opening the store a job's ``store:`` section describes.

The section's models live in ``orchestrator.core.store_spec`` (every job spec has them); the Drive backend is
imported lazily here, with an install hint when its libraries are missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.core.errors import ConfigError
from orchestrator.core.install import install_hint
from orchestrator.core.store_spec import DriveStoreSpec, PathStoreSpec

if TYPE_CHECKING:
    from checkpoints.store import CheckpointStore
    from orchestrator.core.paths import JobPaths

DRIVE_INSTALL_HINT = install_hint("drive")


def open_store(spec: PathStoreSpec | DriveStoreSpec | None, paths: JobPaths) -> CheckpointStore:
    """The store a job's ``store:`` section describes (a path store in ``paths.store_root`` when omitted)."""
    if spec is None or isinstance(spec, PathStoreSpec):
        from checkpoints.path_store import PathStore

        spec = spec or PathStoreSpec()
        return PathStore(spec.path or paths.store_root, max_entries_per_folder=spec.max_entries_per_folder)
    if isinstance(spec, DriveStoreSpec):
        try:
            from checkpoints.drive_store import DriveStore
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            if missing.startswith(("google", "httplib2")):
                raise ConfigError(
                    f"store.type 'drive' needs the Google API client libraries ({missing} is missing): "
                    f"run {DRIVE_INSTALL_HINT}"
                ) from exc
            raise
        return DriveStore.from_spec(spec)
    raise ConfigError(f"unknown store spec {spec!r}; expected store.type 'path' or 'drive'")
