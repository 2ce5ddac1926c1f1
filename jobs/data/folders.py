"""Walking a dataset folder, with Drive's listing failure turned into what to do about it.

Drive's mount fails to list a folder of more than about 7,000 files with an Input/output error; ``os.walk``
would silently skip such a folder (and the dataset would look empty). ``walk_folder`` raises instead.
"""

from __future__ import annotations

import errno
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

from orchestrator.core.errors import ConfigError

#: Listing a folder with more entries than this fails on Colab's Drive mount (the seed saw ~7,000-8,000).
DRIVE_LISTING_LIMIT = 7000


def listing_error(root: Path, folder: str, exc: OSError) -> ConfigError:
    """The error for a folder under the dataset ``root`` that cannot be listed."""
    if exc.errno == errno.EIO:
        src = shlex.quote(str(root))
        return ConfigError(
            f"cannot list {folder}: Input/output error. Drive's mount fails to list a folder of more than about "
            f"{DRIVE_LISTING_LIMIT:,} files. Pack the dataset once, on the machine that holds it (or in a Colab "
            f"cell): `python -m orchestrator dataset pack {src} {shlex.quote(str(root) + '.zip')}` (one archive: "
            f"fastest to stage) or `... {shlex.quote(str(root) + '-packed')}` (a tree of folders of at most 1,000 "
            "files), then set dataset.path to the result")
    return ConfigError(f"cannot list {folder}: {exc.strerror or exc}")


def walk_folder(root: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)`` in sorted order (sub-folders too), raising ``listing_error`` instead of skipping."""

    def fail(exc: OSError) -> None:
        raise listing_error(root, exc.filename or str(root), exc)

    for dirpath, dirnames, names in os.walk(root, onerror=fail):
        dirnames.sort()
        names.sort()
        yield dirpath, dirnames, names
