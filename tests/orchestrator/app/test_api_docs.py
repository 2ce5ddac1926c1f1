"""The public-API example in docs/api.md and README.md runs as written and does what its comments say."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import signal
from pathlib import Path

import pytest

import orchestrator
from jobs.registry import REGISTRY

REPO = Path(__file__).resolve().parents[3]


def python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), flags=re.DOTALL)


@pytest.fixture
def in_tmp(tmp_path: Path):  # type: ignore[no-untyped-def]
    here = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(here)
        REGISTRY.unregister("greet")


def test_api_md_example_runs_and_prints_what_it_says(in_tmp: Path) -> None:
    blocks = python_blocks(REPO / "docs" / "api.md")
    assert len(blocks) == 1
    handlers_before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    logger = logging.getLogger("orchestrator")
    logger_before = (logger.level, list(logger.handlers), logger.propagate)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "docs/api.md", "exec"), {"__name__": "api_example"})  # noqa: S102
    lines = [line for line in out.getvalue().splitlines() if not line.startswith("step ")]  # the job's output
    assert lines[0] == "paused 75"
    state, counter, sessions = lines[1].split()
    assert (state, counter) == ("completed", "5") and int(sessions) >= 2
    assert lines[2:] == ["completed", "hi there"]
    # the in-process runs left the process as they found it
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before
    assert (logger.level, list(logger.handlers), logger.propagate) == logger_before
    # the registered kind joined validation and the schema
    assert "greet" in REGISTRY.names()
    from orchestrator.app.jobfile import json_schema

    assert {"$ref": "#/$defs/GreetSpec"} in json_schema()["oneOf"]


def test_readme_shows_the_same_api_example() -> None:
    readme = python_blocks(REPO / "README.md")
    assert readme, "README.md has no Python API example"
    doc = python_blocks(REPO / "docs" / "api.md")[0]
    for block in readme:
        for line in block.strip().splitlines():
            assert line in doc, f"README line not in the tested docs/api.md example: {line!r}"


def test_status_report_matches_status_json(in_tmp: Path) -> None:
    from orchestrator.app.cli import main

    blocks = python_blocks(REPO / "docs" / "api.md")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(blocks[0].split("# A job kind of your own")[0], "docs/api.md", "exec"), {})  # noqa: S102
    report = orchestrator.status(in_tmp / "api example" / "job.yaml")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["status", str(in_tmp / "api example" / "jobs" / "count"), "--json"]) == 0
    import json

    from_cli = json.loads(out.getvalue())
    ours = report.to_dict()
    for report in (from_cli, ours):  # ages move on between the two reads
        report.pop("lease")
        report["latest_checkpoint"].pop("age")
    assert json.loads(json.dumps(ours, default=str)) == from_cli


def test_unknown_public_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        orchestrator.nope  # noqa: B018
    for name in orchestrator.__all__:  # each public name resolves to the object of that name, and dir() lists it
        assert getattr(getattr(orchestrator, name), "__name__", name) == name and name in dir(orchestrator)
