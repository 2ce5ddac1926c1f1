"""``python -m tests.mounts CONFIG_JSON``: serve one Drive mount double (started by ``harness.DriveMount``)."""

from __future__ import annotations

from tests.mounts.drive_fs import main

main()
