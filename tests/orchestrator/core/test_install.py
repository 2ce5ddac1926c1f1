"""The distribution: a name free on PyPI, a wheel that builds, and [all] that leaves a Colab-like stack alone.

Colab preinstalls torch (CUDA), opencv-python 4.x, numpy 2, google-api-python-client and matplotlib. Installing
``gpu-orchestrator[all]`` there must not replace torch, add opencv-python-headless (a second cv2) or downgrade
numpy. The Colab-like set here is this test environment's own (pinned by scripts/setup.sh, CPU torch 2.13.0
standing in for Colab's CUDA build), seen by a fresh venv through a .pth file; pip resolves the wheel's [all]
into that venv with ``--dry-run --report``, so nothing is changed while every decision pip would take is shown.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from orchestrator.core.install import DISTRIBUTION, install_hint
from tests.conftest import REPO

PYPI_NAMES = Path("/work/.library/env/packages/pypi.tsv")
#: What Colab has that the extras could disturb, and how the test environment pins it.
COLAB_LIKE = {"torch": "2.13.0", "numpy": "2.", "opencv-python": "4.", "matplotlib": "3.",
              "google-api-python-client": "2."}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this tree, its version raised so that no installed (editable) copy counts as the same."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("orchestrator", "jobs", "checkpoints", "darknet_patch"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "README.md", source / "README.md")
    pyproject = (REPO / "pyproject.toml").read_text()
    (source / "pyproject.toml").write_text(pyproject.replace('version = "', 'version = "999.', 1))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True, timeout=300)
    [built] = out.glob("gpu_orchestrator-*.whl")
    return built


def test_the_name_is_ours_and_the_hint_uses_it() -> None:
    assert DISTRIBUTION == "gpu-orchestrator"
    assert install_hint("notify") == "pip install 'gpu-orchestrator[notify]'"
    if PYPI_NAMES.exists():  # the registry's list of names, where this machine has it
        names = {line.split("\t", 1)[0].lower().replace("_", "-") for line in PYPI_NAMES.open(encoding="utf-8")}
        assert "orchestrator" in names and DISTRIBUTION not in names


def test_the_wheel_holds_the_packages_the_entry_point_and_the_templates(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "orchestrator/__main__.py" in names and "jobs/darknet/job.py" in names
    assert any(n.startswith("jobs/darknet/templates/") and n.endswith(".cfg") for n in names)
    assert not any(n.startswith("tests/") for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: gpu-orchestrator" in meta and "Provides-Extra: notify" in meta


def test_all_extras_on_a_colab_like_machine_change_none_of_its_packages(wheel: Path, tmp_path: Path) -> None:
    for name, prefix in COLAB_LIKE.items():
        assert metadata.version(name).startswith(prefix), f"{name} {metadata.version(name)} is not Colab-like"
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("opencv-python-headless")
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = next((venv / "lib").glob("python*/site-packages"))
    (site / "colab-stack.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--dry-run", "-q",
         "--report", str(report), f"{wheel}[all]"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"]
               for item in json.loads(report.read_text())["install"]}
    assert "gpu-orchestrator" in planned
    touched = {name: version for name, version in planned.items()
               if name in COLAB_LIKE or name.startswith("opencv") or name in ("nvidia-cudnn-cu12", "triton")}
    assert touched == {}, f"[all] would replace or add {touched}"
