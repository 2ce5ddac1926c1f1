"""Dataset handling shared by the job kinds (not a kind itself): archives staged safely onto local disk, walking
a dataset folder with Drive's listing failure explained, and ``dataset pack`` (a Drive-friendly tree or one
archive)."""

from __future__ import annotations

from jobs.data.archive import (
    ARCHIVE_SUFFIXES,
    ExtractLimits,
    StagedArchive,
    archive_format,
    archive_signature,
    extract_archive,
    is_archive,
    stage_archive,
)
from jobs.data.folders import DRIVE_LISTING_LIMIT, walk_folder
from jobs.data.pack import PackReport, pack_dataset, plan_pack

__all__ = [
    "ARCHIVE_SUFFIXES",
    "DRIVE_LISTING_LIMIT",
    "ExtractLimits",
    "PackReport",
    "StagedArchive",
    "archive_format",
    "archive_signature",
    "extract_archive",
    "is_archive",
    "pack_dataset",
    "plan_pack",
    "stage_archive",
    "walk_folder",
]
