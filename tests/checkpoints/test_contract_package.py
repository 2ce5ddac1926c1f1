"""The store contract suite ships in the package: a store author's own test module, outside our test tree,
imports ``checkpoints.testing.StoreContract`` and runs it, as docs/checkpoints.md shows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def author_example() -> str:
    doc = (REPO / "docs" / "checkpoints.md").read_text(encoding="utf-8")
    section = doc.split("### Testing a store of your own", 1)[1]
    (block,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    return block


def test_a_store_authors_test_module_runs_the_contract(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_store=author_example())
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", "not atomic")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 15  # the inherited tests ran: round trips, listing, delete, invalid keys
    assert outcomes["skipped"] == 2  # no leave_partial: the two tests that need one say so
    result.stdout.no_fnmatch_line("*ImportError*")


def test_the_contract_catches_a_store_that_breaks_it(pytester: pytest.Pytester) -> None:
    """A store whose listing drops nested keys fails the contract, naming the test."""
    broken = author_example().replace(
        "    pass\n",
        "    def list(self, prefix=''):\n"
        "        return [e for e in super().list(prefix) if e.key.count('/') <= prefix.count('/') + 1]\n", 1)
    pytester.makepyfile(test_my_store=broken)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q", "-k", "list_by_prefix")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*TestMyStore::test_list_by_prefix_is_recursive_and_exact*"])


@pytest.mark.slow  # builds and installs a wheel: 4-10 s
def test_the_contract_imports_from_an_installed_wheel(tmp_path: Path) -> None:
    """Built and installed as a user gets it (not this checkout): ``checkpoints.testing`` is in the wheel."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("orchestrator", "jobs", "checkpoints", "darknet_patch"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("gpu_orchestrator-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True, capture_output=True, cwd=tmp_path)
    code = ("import checkpoints.testing as t, inspect; "
            "print(t.__file__); print(len([n for n, _ in inspect.getmembers(t.StoreContract) if n.startswith('test_')]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"})
    where, count = out.stdout.split()
    assert where.startswith(str(tmp_path / "site")) and int(count) >= 15
