"""The Drive flush at a clean end: only on Colab, only for a home on the Drive mount, never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core import drive_flush
from orchestrator.core.drive_flush import drive_mount_of, flush_drive


def test_only_a_home_on_the_drive_mount_on_colab_is_flushed() -> None:
    calls: list[int] = []
    home = Path("/content/drive/MyDrive/jobs/count")
    assert flush_drive(home, flusher=calls.append, on_colab=True) is not None
    assert calls == [drive_flush.FLUSH_TIMEOUT_MS]
    assert flush_drive(home, flusher=calls.append, on_colab=False) is None
    assert flush_drive(Path("/content/jobs/count"), flusher=calls.append, on_colab=True) is None
    assert flush_drive(home, mode="never", flusher=calls.append, on_colab=True) is None
    assert len(calls) == 1
    assert drive_mount_of(Path("/content/drivers/x")) is None


def test_a_failing_flush_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    def broken(timeout_ms: int) -> None:
        raise RuntimeError("mount gone")

    assert flush_drive(Path("/content/drive/MyDrive/j"), flusher=broken, on_colab=True) is None
    assert "Drive flush failed" in caplog.text


def test_a_completed_run_flushes_the_mount_before_returning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.app.jobfile import load_job_file
    from orchestrator.app.runner import JobRunner
    from tests.conftest import TRAINER, job_yaml

    (tmp_path / "jobs").mkdir()
    (tmp_path / "train.py").write_text(TRAINER)
    (tmp_path / "job.yaml").write_text(job_yaml())
    monkeypatch.setenv("STEPS", "2")
    monkeypatch.setenv("STEP_SECONDS", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(drive_flush, "DRIVE_MOUNT_POINTS", (str(tmp_path),))
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    runner = JobRunner(load_job_file(tmp_path / "job.yaml"))
    seen: list[bool] = []
    runner.drive_flusher = lambda timeout_ms: seen.append(not (tmp_path / "jobs" / "count" / "lease.json").exists())
    assert runner.run(handle_signals=False).exit_code == 0
    assert seen == [True]  # after the lease was released: nothing is written after the flush
