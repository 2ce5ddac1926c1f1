"""The ``store:`` and ``retention:`` sections every job file has (pydantic models only; no backend imported).

    store:                      # default: a path store in <job home>/store
      type: drive
      folder_id: 1AbC...
      credentials: ~/sa.json    # service-account or authorized-user JSON; omit for application default
      # credentials_env: DRIVE_SA_JSON   # or: that JSON itself in an environment variable (a Kaggle secret)
      shared_drive: true
    retention:
      keep_last: 3
      milestone_every: 1000

``checkpoints.spec.open_store`` opens the store a section describes; ``checkpoints.retention`` plans retention
with a :class:`RetentionSpec` directly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from orchestrator.core.fields import ExpandedPath, StrictModel, type_with_default

__all__ = ["DriveStoreSpec", "PathStoreSpec", "RetentionSpec", "StoreSpec", "default_store_spec"]


class PathStoreSpec(StrictModel):
    """Checkpoints in a folder: local disk or the Colab Drive mount."""

    type: Literal["path"] = "path"
    path: ExpandedPath | None = Field(default=None, description="Store folder; default <job home>/store.")
    max_entries_per_folder: int = Field(
        default=1000,
        ge=2,
        description="Fan keys out so no folder holds more entries (the Drive mount fails on big ones).",
    )


class DriveStoreSpec(StrictModel):
    """Checkpoints in Google Drive through its v3 API (Kaggle, spot VMs, laptops: no mount needed)."""

    type: Literal["drive"]
    folder_id: str = Field(min_length=1, description="ID of the Drive folder holding the job's store.")
    credentials: ExpandedPath | None = Field(
        default=None,
        description="Service-account or authorized-user JSON; None = application default credentials "
        "(on Colab after google.colab.auth.authenticate_user()).",
    )
    credentials_env: str | None = Field(
        default=None,
        min_length=1,
        description="Name of an environment variable holding the credentials JSON itself (a Kaggle secret); "
        "instead of credentials.",
    )
    shared_drive: bool = Field(
        default=False, description="The folder is in a shared drive (needed for service accounts)."
    )
    chunk_size_mb: int = Field(default=8, ge=1, le=1024, description="Resumable upload chunk size in MiB.")

    @model_validator(mode="after")
    def _one_credentials_source(self) -> DriveStoreSpec:
        if self.credentials is not None and self.credentials_env is not None:
            raise ValueError("give store.credentials (a file) or store.credentials_env (a variable), not both")
        return self


StoreSpec = Annotated[
    Annotated[PathStoreSpec, Tag("path")] | Annotated[DriveStoreSpec, Tag("drive")],
    Discriminator(type_with_default("path")),  # type: may be omitted for the default path store
]


def default_store_spec() -> PathStoreSpec:
    return PathStoreSpec()


class RetentionSpec(StrictModel, frozen=True):
    """Which stored checkpoints to keep (also the policy ``checkpoints.retention`` plans with)."""

    keep_last: int = Field(default=3, ge=1, description="Keep the newest N checkpoints (by counter).")
    milestone_every: int | None = Field(
        default=None, ge=1, description="Also keep every checkpoint whose counter is a multiple of this."
    )
    keep_final: bool = Field(default=True, description="Keep checkpoints tagged final.")
    keep_best: bool = Field(default=True, description="Keep checkpoints tagged best.")
