"""DarknetPaths: every darknet path from the job's JobPaths, one name per folder, darknet's space-free view."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from jobs.darknet.paths import DarknetPaths
from orchestrator.core.errors import ConfigError, StateError
from orchestrator.core.paths import JobPaths


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A space-free temp folder of this test for the darknet view (not the machine's /tmp)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def awkward(tmp_path: Path) -> DarknetPaths:
    # the local folder's name is not the job's name: it is whatever JobPaths says (e.g. keyed by a job id)
    return DarknetPaths(JobPaths(home=tmp_path / "My Drive" / "jobs ü" / "det",
                                 local=tmp_path / "local work" / "det-3f9a ü"))


def test_durable_paths_are_in_the_home_and_local_ones_in_the_work_folder(tmp_path: Path) -> None:
    paths = awkward(tmp_path)
    home, work = paths.job.home, paths.job.work
    for durable in (paths.durable, paths.loss_history, paths.loss_chart, paths.kept_cfg("yolov4-tiny-obj.cfg"),
                    paths.pretrained("https://example.com/w/yolov4-tiny.conv.29?dl=1")):
        assert durable.is_relative_to(home / "darknet"), durable
    for local in (paths.source, paths.darknet_record, paths.dataset, paths.obj_data, paths.cfg_record, paths.backup):
        assert local.is_relative_to(work), local
    assert paths.backup == work / "backup" and paths.obj_data.parent == paths.dataset
    assert paths.pretrained("https://example.com/w/yolov4-tiny.conv.29?dl=1").name == "yolov4-tiny.conv.29"
    assert paths.pretrained("https://example.com/?dl=1").name == "pretrained.weights"
    own = tmp_path / "weights ü" / "darknet53.conv.74"
    assert paths.pretrained(str(own)) == own  # the user's own file stays where it is


def test_a_work_folder_with_spaces_is_seen_by_darknet_through_one_space_free_symlink(
        tmp_path: Path, temp_dir: Path) -> None:
    paths = awkward(tmp_path)
    view = paths.ensure_darknet_view()
    assert view.is_relative_to(temp_dir) and view.is_symlink() and not any(c.isspace() for c in str(view))
    assert view.resolve() == paths.work.resolve()
    seen = paths.for_darknet(paths.backup / "micro_last.weights")
    assert not any(c.isspace() for c in str(seen)) and seen == view / "backup" / "micro_last.weights"
    # one folder: what darknet writes under its name is the file our code reads under the real one
    paths.backup.mkdir(parents=True)
    seen.write_bytes(b"weights")
    assert (paths.backup / "micro_last.weights").read_bytes() == b"weights"
    assert paths.for_darknet(tmp_path / "elsewhere ü") == tmp_path / "elsewhere ü"  # outside the work folder


def test_the_view_is_repaired_and_stable(tmp_path: Path, temp_dir: Path) -> None:
    paths = awkward(tmp_path)
    view = paths.ensure_darknet_view()
    assert paths.ensure_darknet_view() == view  # idempotent
    view.unlink()
    view.symlink_to(tmp_path, target_is_directory=True)  # points elsewhere (a stale link of an old folder)
    assert paths.ensure_darknet_view() == view and view.resolve() == paths.work.resolve()
    other = DarknetPaths(JobPaths(home=tmp_path / "h", local=tmp_path / "local work" / "det-77aa ü"))
    assert other.darknet_view != view  # same name, other folder: another link


def test_a_work_folder_without_spaces_is_its_own_view(tmp_path: Path, temp_dir: Path) -> None:
    paths = DarknetPaths(JobPaths(home=tmp_path / "home", local=tmp_path / "work" / "det"))
    assert paths.ensure_darknet_view() == paths.work and paths.work.is_dir()
    assert paths.for_darknet(paths.obj_data) == paths.obj_data
    assert not list(temp_dir.iterdir())


def test_a_temp_folder_with_spaces_too_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spaced = tmp_path / "temp folder"
    spaced.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spaced))
    with pytest.raises(ConfigError, match="work_dir"):
        awkward(tmp_path).ensure_darknet_view()


def test_paths_from_the_home_alone_reach_the_durable_files_only(tmp_path: Path) -> None:
    paths = DarknetPaths(JobPaths.for_home(tmp_path / "jobs ü" / "det"))
    assert paths.loss_chart == tmp_path / "jobs ü" / "det" / "darknet" / "loss.png"
    with pytest.raises(StateError, match="local work folder is unknown"):
        _ = paths.backup
