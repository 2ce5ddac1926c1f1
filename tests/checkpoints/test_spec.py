from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from checkpoints.manifest import Manifest, ManifestRecord
from checkpoints.path_store import PathStore
from checkpoints.retention import plan_retention
from checkpoints.spec import open_store
from orchestrator.core.errors import ConfigError
from orchestrator.core.paths import JobPaths
from orchestrator.core.store_spec import DriveStoreSpec, PathStoreSpec, RetentionSpec, StoreSpec

STORE = TypeAdapter(StoreSpec)


def test_store_union_discriminates_on_type(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIVE_ROOT", str(tmp_path / "My Drive"))
    path_spec = STORE.validate_python({"type": "path", "path": "${DRIVE_ROOT}/jobs store"})
    assert isinstance(path_spec, PathStoreSpec) and path_spec.path == tmp_path / "My Drive" / "jobs store"
    drive = STORE.validate_python({"type": "drive", "folder_id": "1AbC", "credentials": "~/sa.json"})
    assert isinstance(drive, DriveStoreSpec)
    assert drive.credentials == Path("~/sa.json").expanduser() and drive.chunk_size_mb == 8
    assert not drive.shared_drive


def test_unknown_keys_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="folderid"):
        STORE.validate_python({"type": "drive", "folderid": "x"})
    with pytest.raises(ValidationError):
        STORE.validate_python({"type": "s3"})
    with pytest.raises(ValidationError):
        STORE.validate_python({"type": "path", "max_entries_per_folder": 1})
    with pytest.raises(ValidationError):
        RetentionSpec(keep_last=0)


def test_retention_section_plans_retention_directly() -> None:
    """The job file's retention: section is the policy retention plans with (no second copy of its fields)."""
    spec = RetentionSpec.model_validate({"keep_last": 1, "milestone_every": 20})
    records = tuple(ManifestRecord(key=f"checkpoints/{n:08d}-c{n}.pt", seq=n, counter=10 * n, size=1,
                                   sha256="0" * 64, name=f"c{n}.pt", created=float(n))
                    for n in range(1, 5))
    plan = plan_retention(Manifest(records=records), spec)
    assert sorted(r.counter for r in plan.delete) == [10, 30]  # 40 newest, 20 a milestone
    with pytest.raises(ValidationError, match="frozen"):
        spec.keep_last = 2  # type: ignore[misc]


def test_open_path_store_defaults_to_job_home(tmp_path: Path) -> None:
    paths = JobPaths(home=tmp_path / "home", local=tmp_path / "work")
    store = open_store(None, paths)
    assert isinstance(store, PathStore) and store.root == paths.store_root
    custom = open_store(PathStoreSpec(path=tmp_path / "elsewhere", max_entries_per_folder=50), paths)
    assert isinstance(custom, PathStore) and custom.root == tmp_path / "elsewhere"
    assert custom.max_entries_per_folder == 50


class _FakeDriveModule(importlib.abc.MetaPathFinder):
    """Stands in for checkpoints.drive_store (built on another branch), loaded from a file we write."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname == "checkpoints.drive_store":
            return importlib.util.spec_from_file_location(fullname, self.path)
        return None


@pytest.fixture
def fake_drive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    def install(source: str) -> None:
        module_file = tmp_path / "fake_drive_store.py"
        module_file.write_text(source)
        monkeypatch.delitem(sys.modules, "checkpoints.drive_store", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_FakeDriveModule(module_file), *sys.meta_path])

    return install


def test_missing_google_libraries_give_install_hint(
    fake_drive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "googleapiclient", None)  # as if not installed
    fake_drive("import googleapiclient.discovery\n")
    with pytest.raises(ConfigError, match=r"pip install 'gpu-orchestrator\[drive\]'"):
        open_store(DriveStoreSpec(type="drive", folder_id="f"), JobPaths(tmp_path, tmp_path))


def test_drive_store_is_built_from_spec(fake_drive, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fake_drive(
        "class DriveStore:\n"
        "    @classmethod\n"
        "    def from_spec(cls, spec):\n"
        "        obj = cls(); obj.spec = spec; return obj\n"
    )
    spec = DriveStoreSpec(type="drive", folder_id="folder-1", shared_drive=True)
    store = open_store(spec, JobPaths(tmp_path, tmp_path))
    assert type(store).__name__ == "DriveStore" and store.spec is spec  # type: ignore[attr-defined]


def test_spec_module_imports_only_pydantic_and_stdlib() -> None:
    import subprocess

    code = (
        "import sys, checkpoints.spec\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('watchdog', 'googleapiclient', 'torch', 'cv2')]\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('checkpoints.'))\n"
        "print(heavy, loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert out.strip() == "[] ['checkpoints.spec']"


def test_package_exports_resolve() -> None:
    import checkpoints

    for name in checkpoints.__all__:
        home = importlib.import_module(checkpoints._EXPORTS[name])
        assert getattr(checkpoints, name) is getattr(home, name), f"checkpoints.{name} is not {home.__name__}.{name}"
