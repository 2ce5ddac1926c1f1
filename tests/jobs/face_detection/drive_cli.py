"""Child process for the Drive API tests: ``python -m orchestrator ARGS`` with the job's ``store: {type: drive}``
talking to the loopback Drive server at ``$FACE_TEST_DRIVE_URL`` (tests/checkpoints/drive_server.py) through the
real google-api-python-client. Only the endpoint and the credentials differ from production: the store, the
manifest, the face job and the CLI are the production code. (Once ``ORCHESTRATOR_DRIVE_API_URL`` exists on main,
this wrapper reduces to setting that variable.)

usage: python drive_cli.py run job.yaml
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from checkpoints.drive_auth import build_drive_service, plain_http_factory
from checkpoints.drive_retry import DriveRetry
from checkpoints.drive_store import DriveStore
from orchestrator.app.cli import main


def loopback_from_spec(cls: type[DriveStore], spec: Any) -> DriveStore:
    factory = plain_http_factory()
    service = build_drive_service(factory, root_url=os.environ["FACE_TEST_DRIVE_URL"])
    return cls(service, spec.folder_id, http_factory=factory, shared_drive=bool(spec.shared_drive),
               chunk_size=256 * 1024, retry=DriveRetry(attempts=6, initial=0.01, maximum=0.1, jitter=0.01))


if __name__ == "__main__":
    DriveStore.from_spec = classmethod(loopback_from_spec)  # type: ignore[method-assign, assignment]
    sys.exit(main(sys.argv[1:]))
