"""``python -m orchestrator`` itself, as a process of its own; and ``main(argv)`` in-process leaves the process
as it found it (which is what lets the other CLI tests run it in-process)."""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from orchestrator.core.logs import ROOT_LOGGER
from tests.conftest import cli, cli_process


def test_python_m_orchestrator_runs_a_job_and_reports_its_status(job_dir: Path) -> None:
    result = cli_process(job_dir, "run", "job.yaml", env={"STEPS": "3"})
    assert result.returncode == 0, result.stderr
    assert "job count completed" in result.stdout
    assert "INFO" in result.stderr  # the console log goes to stderr
    report = cli_process(job_dir, "status", "job.yaml", "--json")
    assert report.returncode == 0, report.stderr
    shown = json.loads(report.stdout)
    assert shown["state"] == "completed" and shown["progress"]["counter"] == 3


def test_python_m_orchestrator_names_the_bad_field_without_a_traceback(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text((job_dir / "job.yaml").read_text() + "restrat: {max_restarts: 1}\n")
    result = cli_process(job_dir, "run", "job.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "restrat" in result.stderr and "job.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (job_dir / "jobs" / "count").exists()  # nothing started


def test_a_usage_error_exits_2_with_argparse_help(job_dir: Path) -> None:
    result = cli(job_dir, "frobnicate")
    assert result.returncode == 2 and "invalid choice: 'frobnicate'" in result.stderr
    assert cli(job_dir, "run").returncode == 2  # the job file is required


def test_main_in_process_restores_signal_handlers_and_logging(job_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(job_dir)
    monkeypatch.setenv("STEPS", "2")
    logger = logging.getLogger(ROOT_LOGGER)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), logger.level,
              list(logger.handlers), logger.propagate)
    assert main(["run", "job.yaml"]) == 0
    after = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), logger.level,
             list(logger.handlers), logger.propagate)
    assert after == before
    captured = capsys.readouterr()
    assert "job count completed" in captured.out and "INFO job count completed" in captured.err
    assert Path.cwd() == job_dir and os.environ["STEPS"] == "2"
