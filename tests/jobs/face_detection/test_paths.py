"""FacePaths: the output folder in the home, each input's files, the weights cache and the chunk staging folder
in the work folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.face_detection.paths import FacePaths
from orchestrator.core.errors import StateError
from orchestrator.core.paths import JobPaths


def test_outputs_are_in_the_home_and_the_weights_cache_in_the_work_folder(tmp_path: Path) -> None:
    job = JobPaths(home=tmp_path / "My Drive" / "faces ü", local=tmp_path / "local work" / "faces-1b2c ü")
    paths = FacePaths(job, "résultats 2024")
    assert paths.output == job.home / "résultats 2024"
    assert paths.batch_status == paths.output / "batch_status.json"
    assert paths.output_file("clip ü 01.summary.json") == paths.output / "clip ü 01.summary.json"
    assert paths.weights_cache == job.work / "weights" and paths.staging == job.work / "face-staging"


def test_status_from_the_home_alone_reads_the_outputs_but_not_the_cache(tmp_path: Path) -> None:
    paths = FacePaths(JobPaths.for_home(tmp_path / "faces ü"))
    assert paths.batch_status == tmp_path / "faces ü" / "output" / "batch_status.json"
    with pytest.raises(StateError, match="local work folder is unknown"):
        _ = paths.weights_cache
