"""CommandPaths: the program's {output_dir} on durable storage or on local disk, from the job's JobPaths."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from jobs.command.job import CommandJob
from jobs.command.paths import CommandPaths
from jobs.command.spec import CommandSpec
from orchestrator.core.errors import StateError
from orchestrator.core.paths import JobPaths


def awkward(tmp_path: Path) -> JobPaths:
    return JobPaths(home=tmp_path / "My Drive" / "jobs ü" / "train", local=tmp_path / "local disk" / "train-9c1e ü")


def test_output_is_in_the_home_by_default_and_in_the_work_folder_with_local_output(tmp_path: Path) -> None:
    job = awkward(tmp_path)
    assert CommandPaths(job).output == job.home / "output"
    assert CommandPaths(job, local_output=True).output == job.work / "output"
    assert CommandPaths(job).done_marker("done/final.txt") == job.home / "output" / "done" / "final.txt"


def test_the_job_uses_its_paths_for_every_placeholder(tmp_path: Path) -> None:
    job = awkward(tmp_path)
    spec = CommandSpec.model_validate({
        "name": "train", "kind": "command", "checkpoint_dir": str(tmp_path / "My Drive" / "jobs ü"),
        "work_dir": str(tmp_path / "elsewhere"),  # the work folder comes from JobPaths, never from work_dir
        "command": ["{python}", "t.py", "--out", "{output_dir}"], "local_output": True, "done_when": "final.txt",
    })
    kind = CommandJob(spec, job)
    values = kind.placeholders(SimpleNamespace(session_id="s1"), latest=None)  # type: ignore[arg-type]
    assert values["output_dir"] == str(job.work / "output") and values["work_dir"] == str(job.work)
    assert values["job_dir"] == str(job.home)
    assert not kind.is_done()
    (job.work / "output").mkdir(parents=True)
    (job.work / "output" / "final.txt").write_text("ok")
    assert kind.is_done()


def test_local_output_needs_the_work_folder(tmp_path: Path) -> None:
    paths = CommandPaths(JobPaths.for_home(tmp_path / "jobs ü" / "train"), local_output=True)
    with pytest.raises(StateError, match="local work folder is unknown"):
        _ = paths.output
    assert CommandPaths(JobPaths.for_home(tmp_path / "h")).output == tmp_path / "h" / "output"
