"""A command job needs neither torch, OpenCV, numpy nor the Google client: nothing on its path imports them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

HEAVY = ("torch", "cv2", "numpy", "matplotlib", "googleapiclient")


def test_command_job_path_imports_no_heavy_extras() -> None:
    code = (
        "import sys\n"
        "from orchestrator.app.cli import main\n"
        "from orchestrator.app.jobfile import job_spec_adapter\n"
        "from orchestrator.app.runner import JobRunner\n"
        "import jobs.command.job, checkpoints.job_checkpoints, checkpoints.path_store\n"
        "job_spec_adapter()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_kind_is_registered_with_its_extra() -> None:
    from jobs.registry import REGISTRY

    assert {entry.name: entry.extra for entry in REGISTRY} == {
        "command": None, "darknet": "darknet", "face_detection": "face"}
