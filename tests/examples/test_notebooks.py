"""The Colab and Kaggle notebooks: valid nbformat, and their cells run top to bottom with the platform stubbed.

Stubbed are only what exists on those platforms alone: ``google.colab.drive.mount``, ``kaggle_secrets``, and
their folders (/content/drive/MyDrive, /kaggle/...) mapped to temporary ones. The ``!`` lines run as IPython
runs them (``{name}`` expanded from the notebook's variables): pip resolves the source folder without installing
(``--dry-run``), ``python -m orchestrator run/status`` run for real on a job file placed where the notebook looks.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest

from orchestrator.app.jobfile import load_job_file
from tests.conftest import REPO, TRAINER, job_yaml

EXAMPLES = REPO / "examples"


def run_shell(line: str, namespace: dict[str, Any], cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(line.format_map(namespace))
    if argv[0] == "pip":
        assert argv[1:3] == ["-q", "install"], line
        argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation", *argv[3:]]
    elif argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(cwd)})


def execute(notebook: Path, replace: dict[str, str], cwd: Path) -> tuple[dict[str, Any], list[str]]:
    book = nbformat.read(notebook, as_version=4)
    nbformat.validate(book)
    namespace: dict[str, Any] = {}
    outputs = []
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        source = cell.source
        for old, new in replace.items():
            source = source.replace(old, new)
        python_lines = []
        for line in source.splitlines():
            if line.startswith("!"):
                exec("\n".join(python_lines), namespace)  # noqa: S102 - the notebook's own code
                python_lines = []
                result = run_shell(line[1:], namespace, cwd)
                assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
                outputs.append(result.stdout + result.stderr)
            else:
                python_lines.append(line)
        exec("\n".join(python_lines), namespace)  # noqa: S102
    return namespace, outputs


@pytest.fixture
def source_folder(tmp_path: Path) -> Path:
    """The project's folder as a user keeps it on Drive or as a Kaggle dataset."""
    folder = tmp_path / "orchestrator"
    for name in ("orchestrator", "jobs", "checkpoints", "darknet_patch"):
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, folder / name)
    return folder


def place_job(job_file: Path) -> None:
    """A quick command job where the notebook expects its job file (the notebook keeps an existing one)."""
    job_file.parent.mkdir(parents=True, exist_ok=True)
    (job_file.parent / "train.py").write_text(TRAINER)
    job_file.write_text(job_yaml().replace('"train.py"', f'"{job_file.parent / "train.py"}"')
                        .replace("./jobs", str(job_file.parent / "homes")).replace("./work", str(job_file.parent / "w")))


def test_colab_notebook(tmp_path: Path, source_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drive = tmp_path / "My Drive"
    drive.mkdir()
    shutil.move(source_folder, drive / "orchestrator")
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=lambda path: mounted.append(path))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    place_job(drive / "jobs" / "job.yaml")
    namespace, outputs = execute(EXAMPLES / "colab.ipynb", {"/content/drive/MyDrive": str(drive)}, tmp_path)
    assert mounted == ["/content/drive"]
    assert "Would install gpu-orchestrator" in outputs[0]
    assert "completed" in outputs[1] and "state      completed" in outputs[2]
    example = tmp_path / "example.yaml"
    example.write_text(namespace["EXAMPLE_JOB"])
    assert load_job_file(example).kind == "darknet"


def test_kaggle_notebook(tmp_path: Path, source_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "working"
    work.mkdir()
    secrets = {"DRIVE_SA_JSON": '{"type": "service_account"}', "NOTIFY_URL": "json://127.0.0.1:9/none"}
    kaggle = types.ModuleType("kaggle_secrets")
    kaggle.UserSecretsClient = lambda: types.SimpleNamespace(get_secret=secrets.__getitem__)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kaggle_secrets", kaggle)
    monkeypatch.setenv("NOTIFY_URL", "")  # the notebook sets it; restored afterwards
    place_job(work / "job.yaml")
    replace = {"/kaggle/working": str(work), "/kaggle/input/orchestrator": str(source_folder)}
    namespace, outputs = execute(EXAMPLES / "kaggle.ipynb", replace, tmp_path)
    assert (work / "sa.json").read_text() == secrets["DRIVE_SA_JSON"]
    assert "Would install gpu-orchestrator" in outputs[0] and "state      completed" in outputs[2]
    example = tmp_path / "example.yaml"
    example.write_text(namespace["EXAMPLE_JOB"])
    spec = load_job_file(example)
    assert spec.store.type == "drive" and spec.notify == [secrets["NOTIFY_URL"]]
