"""End to end: a ``command`` job whose store is the Drive API store, driven through the CLI.

The loopback Drive v3 server runs in the test process; ``ORCHESTRATOR_DRIVE_API_URL`` points the job (in this
process through ``main(argv)``, or in a child process for ``kill -9``) at it, and the job file's
``credentials`` is a token file as ``Credentials.to_json()`` writes it, which the server checks on every
request. The listing lag is longer than the tests: Drive never lists anything these jobs write.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from tests.checkpoints.drive_server import DriveFake
from tests.conftest import job_yaml, popen_cli

TOKEN = "ya29.job-test-ACCESS"
STEPS = 12


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch) -> Iterator[DriveFake]:
    fake = DriveFake(list_lag=3600).start()
    fake.required_token = TOKEN
    monkeypatch.setenv("ORCHESTRATOR_DRIVE_API_URL", fake.root_url)
    yield fake
    fake.stop()


def expected_result(steps: int = STEPS) -> str:
    """What the trainer computes uninterrupted (tests/conftest.py TRAINER)."""
    acc = "seed"
    for step in range(1, steps + 1):
        acc = hashlib.sha256(f"{acc}:{step}".encode()).hexdigest()[:16]
    return acc


def drive_job(job_dir: Path, drive: DriveFake) -> str:
    token = job_dir / "secrets" / "drive token.json"
    token.parent.mkdir()
    token.write_text(json.dumps({  # Credentials.to_json(): no "type"; a valid token is used as is
        "token": TOKEN, "refresh_token": "1//r", "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "c.apps.googleusercontent.com", "client_secret": "s", "scopes": ["https://www.googleapis.com/auth/drive"],
        "expiry": "2099-01-01T00:00:00Z",
    }))
    folder = drive.add_folder("Colab Notebooks ✓")
    store = f"store: {{type: drive, folder_id: '{folder}', credentials: 'secrets/drive token.json'}}\n"
    (job_dir / "job.yaml").write_text(job_yaml(extra="local_output: true\nretention: {keep_last: 2}\n" + store))
    return folder


def stored_manifest(drive: DriveFake) -> dict:
    (manifest,) = [f for f in drive.objects() if f.properties.get("orch_key") == "manifest.json"]
    return json.loads(manifest.content)


def run_here(job_dir: Path, monkeypatch: pytest.MonkeyPatch, *argv: str, env: dict[str, str] | None = None) -> int:
    monkeypatch.chdir(job_dir)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    return main(list(argv))


def session_logs(job_dir: Path, index: int) -> str:
    logs = job_dir / "jobs" / "count" / "logs"
    return "".join(p.read_text() for p in logs.glob(f"session-{index:03d}-*.command.log"))


def test_a_command_job_on_the_drive_store_runs_lists_and_keeps_its_retention(
    job_dir: Path, drive: DriveFake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = drive_job(job_dir, drive)
    assert run_here(job_dir, monkeypatch, "run", "job.yaml", env={"STEPS": str(STEPS), "STEP_SECONDS": "0.02"}) == 0
    assert (job_dir / "work" / "count" / "output" / "result.txt").read_text() == expected_result()
    records = stored_manifest(drive)["records"]
    assert sorted(r["counter"] for r in records) == [STEPS - 1, STEPS]
    names = sorted(drive.path_of(f) for f in drive.objects())
    assert names == [
        "Colab Notebooks ✓/.orchestrator/manifest.json",
        f"Colab Notebooks ✓/checkpoints/00000/ckpt-{STEPS - 1:04d}.txt",
        f"Colab Notebooks ✓/checkpoints/00000/ckpt-{STEPS:04d}.txt",
    ], "a person browsing Drive finds each checkpoint under its own name"
    capsys.readouterr()
    assert run_here(job_dir, monkeypatch, "checkpoints", "job.yaml", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["counter"] for r in rows if r["where"] == "store") == [STEPS - 1, STEPS]
    assert drive.requests and folder


def test_kill_9_then_a_blank_vm_inside_the_listing_lag_resumes_from_drive_with_the_same_result(
    job_dir: Path, drive: DriveFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive_job(job_dir, drive)
    proc = popen_cli(job_dir, "run", "job.yaml", env={"STEPS": str(STEPS), "STEP_SECONDS": "0.2"})
    deadline = time.time() + 60
    synced = 0
    while time.time() < deadline and synced < 4:
        try:
            synced = max((r["counter"] for r in stored_manifest(drive)["records"]), default=0)
        except ValueError:  # no manifest yet
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.communicate()
    assert synced >= 4, "the first session published checkpoints before it was killed"
    before = stored_manifest(drive)
    seqs_before = {r["seq"] for r in before["records"]}

    # the VM is gone: home and work folder wiped; Drive still lists nothing that was written
    shutil.rmtree(job_dir / "jobs" / "count")
    shutil.rmtree(job_dir / "work")
    assert run_here(job_dir, monkeypatch, "run", "job.yaml", env={"STEPS": str(STEPS), "STEP_SECONDS": "0.02"}) == 0

    log = session_logs(job_dir, 1)
    assert "fresh start" not in log, "the blank VM must resume from Drive, not start from scratch"
    resumed_at = int(log.split("resuming at ")[1].split()[0])
    assert resumed_at >= synced, "nothing that reached Drive was lost"
    assert (job_dir / "work" / "count" / "output" / "result.txt").read_text() == expected_result()
    after = stored_manifest(drive)
    assert after["revision"] > before["revision"]
    new_seqs = [r["seq"] for r in after["records"] if r["counter"] > synced]
    assert new_seqs and min(new_seqs) > max(seqs_before)
    pin = json.loads((job_dir / "jobs" / "count" / "store-manifest.json").read_text())
    assert pin["revision"] == after["revision"], "the job home records the manifest's revision"
    (manifest,) = [f for f in drive.objects() if f.properties.get("orch_key") == "manifest.json"]
    assert pin["file_id"] == manifest.id


def test_a_resume_whose_home_recorded_a_newer_manifest_waits_and_stops_clearly(
    job_dir: Path, drive: DriveFake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The home recorded revision N, Drive shows an older manifest (lost or not yet visible): never a fresh start."""
    import checkpoints.manifest as manifest_module

    drive_job(job_dir, drive)
    assert run_here(job_dir, monkeypatch, "run", "job.yaml", env={"STEPS": "3", "STEP_SECONDS": "0.01"}) == 0
    home = job_dir / "jobs" / "count"
    pin_path = home / "store-manifest.json"
    pin = json.loads(pin_path.read_text())
    pin_path.write_text(json.dumps({**pin, "revision": pin["revision"] + 5}))
    for name in os.listdir(home):  # a new session of the job; only the home's manifest record survives
        if name != pin_path.name:
            shutil.rmtree(home / name) if (home / name).is_dir() else (home / name).unlink()
    shutil.rmtree(job_dir / "work")
    monkeypatch.setattr(manifest_module.Backoff.__init__, "__defaults__", (3, 0.01, 0.02, time.sleep))

    code = run_here(job_dir, monkeypatch, "run", "job.yaml", env={"STEPS": "3", "STEP_SECONDS": "0.01"})
    captured = capsys.readouterr()
    assert code != 0
    assert captured.err.count("for the store to catch up") == 3, "one bounded wait, then the error"
    said = captured.err + captured.out + "".join(p.read_text() for p in (home / "logs").glob("*"))
    assert "recorded manifest revision" in said and "run again in a few minutes" in said
    assert not (job_dir / "work" / "count" / "output" / "ckpt-0001.txt").exists(), "no fresh start"
    assert json.loads(pin_path.read_text())["revision"] == pin["revision"] + 5, "nothing was changed"


def test_the_daily_cap_pauses_uploads_while_the_job_trains_on_and_status_shows_it(
    job_dir: Path, drive: DriveFake, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    drive_job(job_dir, drive)
    drive.daily_cap_after_bytes = 0  # every upload is refused as Drive refuses them at the daily cap
    started = time.monotonic()
    code = run_here(job_dir, monkeypatch, "run", "job.yaml", env={"STEPS": "6", "STEP_SECONDS": "0.1"})
    assert code == 0, "training is not stopped by the store's quota"
    assert time.monotonic() - started < 30, "a paused store does not hold the clean stop for the flush timeout"
    assert (job_dir / "work" / "count" / "output" / "result.txt").read_text() == expected_result(6)
    capsys.readouterr()
    assert run_here(job_dir, monkeypatch, "status", "job.yaml", "--json") == 0
    events = json.loads(capsys.readouterr().out)["recent_events"]
    paused = [e for e in events if e.get("event") == "store_paused"]
    assert paused and "daily upload cap" in paused[-1]["reason"]
    assert not drive.objects(), "nothing half-published"
