"""The darknet job kind end to end through the CLI, with the stand-in darknet (tests/fakes/darknet).

The CLI runs in this process (``main(argv)``); the kill -9 tests run ``python -m orchestrator`` as a process.

Kill -9 mid-training and lose the VM, a truncated newest backup, a deadline stop, a NaN divergence.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from checkpoints.manifest import Manifest, ManifestRecord, ManifestStore
from checkpoints.path_store import PathStore
from jobs.darknet.cfg import load_cfg
from jobs.darknet.job import DarknetJob, tag_best
from jobs.darknet.weights import DarknetWeightsValidator
from orchestrator.app.jobfile import load_job_file
from orchestrator.core.paths import JobPaths
from tests.conftest import CliResult
from tests.conftest import cli as run_cli
from tests.orchestrator.identity import create_job_home, work_folder

ROOT = Path(__file__).resolve().parents[3]
FAKE = ROOT / "tests" / "fakes" / "darknet"
FIXTURES = ROOT / ".." / "shared" / "fixtures" / "darknet"


def fake_binary(folder: Path) -> Path:
    """The stand-in run by this interpreter (its shebang's python3 may lack the project's dependencies)."""
    wrapper = folder / "darknet"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def job_yaml(fork: str, sleep: str = "0.005", budget: str = "1h", extra_env: str = "") -> str:
    return textwrap.dedent(f"""\
        name: det
        kind: darknet
        checkpoint_dir: ./jobs
        work_dir: ./work
        darknet: {{binary: ./bin/darknet, fork: {fork}}}
        dataset: {{path: ./voc data, format: voc, classes: [box], test_fraction: 0.25}}
        cfg: ./micro.cfg
        env: {{FAKE_DARKNET_FORK: {fork}, FAKE_DARKNET_SLEEP: "{sleep}"{extra_env}}}
        session: {{budget: {budget}, margin: 0, heartbeat: 1s, clock: process}}
        restart: {{max_restarts: 1, backoff: 0.1s}}
        train: {{stop_wait: 30s, chart_every: 0.5s}}
        """)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "my jobs ü"
    data = folder / "voc data"
    data.mkdir(parents=True)
    for i in range(8):
        (data / f"img{i}.png").write_bytes(b"\x89PNG fake " + bytes([i]))
        (data / f"img{i}.xml").write_text(
            "<annotation><size><width>64</width><height>64</height></size><object><name>box</name>"
            f"<bndbox><xmin>{4 + i}</xmin><ymin>8</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object></annotation>"
        )
    shutil.copy(FIXTURES / "micro.cfg", folder / "micro.cfg")
    (folder / "bin").mkdir()
    fake_binary(folder / "bin")
    return folder


def _tmpdir(job_dir: Path) -> dict[str, str]:
    """The job's space-free symlink to its work folder goes in a temp folder of this test, not the real /tmp."""
    tmp = job_dir.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    return {"TMPDIR": str(tmp)}


def _env(job_dir: Path) -> dict[str, str]:
    """The environment of an ``orchestrator`` process of its own (the kill -9 tests)."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **_tmpdir(job_dir)}


def cli(job_dir: Path, *args: str) -> CliResult:
    """``orchestrator ARGS`` through ``main(argv)`` in this process (see tests/conftest.py)."""
    return run_cli(job_dir, *args, env=_tmpdir(job_dir))


def manifest_counters(job_dir: Path) -> list[tuple[str, int | None]]:
    store = PathStore(job_dir / "jobs" / "det" / "store")
    return [(r.name, r.counter) for r in ManifestStore(store).load().records]


def darknet_logs(job_dir: Path) -> list[str]:
    return [p.read_text(errors="replace") for p in sorted((job_dir / "jobs" / "det" / "logs").glob("*.darknet.log"))]


def iterations(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"^\s*(\d+): [-\w.]+, [-\w.]+ avg", log, re.MULTILINE)]


def kill_once_synced(proc: subprocess.Popen, job_dir: Path, counter: int = 100, timeout: float = 60) -> int:
    """kill -9 the run once a backup at ``counter`` or later is in the store; returns the newest synced counter."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        synced = [c for _, c in manifest_counters(job_dir) if c] if (job_dir / "jobs" / "det" / "store").exists() else []
        if synced and max(synced) >= counter:
            break
        time.sleep(0.05)
    else:
        pytest.fail("no backup reached the store")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return max(c for _, c in manifest_counters(job_dir) if c)


def journal(job_dir: Path) -> list[dict]:
    lines = (job_dir / "jobs" / "det" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_uninterrupted_run_completes_with_final_weights_in_the_store(job_dir: Path, fork: str) -> None:
    (job_dir / "job.yaml").write_text(job_yaml(fork, sleep="0"))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    counters = dict(manifest_counters(job_dir))
    assert counters["micro_final.weights"] == 250
    records = ManifestStore(PathStore(job_dir / "jobs" / "det" / "store")).load().records
    assert [r.tags for r in records if r.name == "micro_final.weights"] == [("final",)]
    assert len(records) <= 3  # retention (keep_last: 3) pruned the older backups
    assert iterations(darknet_logs(job_dir)[0]) == list(range(1, 251))
    assert (job_dir / "jobs" / "det" / "darknet" / "loss.png").stat().st_size > 1000
    work = work_folder(job_dir, "det") / "dataset"
    obj_data = (work / "obj.data").read_text()
    assert "classes = 1" in obj_data
    # darknet strips spaces from obj.data: the work folder ("my jobs ü") is reached through a space-free link
    train_list = next(line.split("=", 1)[1].strip() for line in obj_data.splitlines() if line.startswith("train"))
    assert " " not in train_list and Path(train_list).resolve() == (work / "train.txt").resolve()
    assert len((work / "train.txt").read_text().splitlines()) + len((work / "test.txt").read_text().splitlines()) == 8
    again = cli(job_dir, "run", "job.yaml")  # completed: nothing to do
    assert again.returncode == 0 and len(darknet_logs(job_dir)) == 1
    shutil.rmtree(job_dir / "work")  # another machine: the listing uses the cfg kept in the job home
    listing = cli(job_dir, "checkpoints", "job.yaml", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert rows[0]["name"] == "micro_final.weights" and rows[0]["counter"] == 250
    assert rows[0]["valid"] and rows[0]["resume"] and rows[0]["where"] == "store"


@pytest.mark.slow
@pytest.mark.parametrize("fork", ["pjreddie", "alexeyab"])
def test_kill_9_and_vm_loss_resume_from_the_newest_synced_backup(job_dir: Path, fork: str) -> None:
    cfg_file = job_dir / "micro.cfg"  # long enough that the kill lands mid-training
    cfg_file.write_text(cfg_file.read_text().replace("max_batches=250", "max_batches=600"))
    (job_dir / "job.yaml").write_text(job_yaml(fork, sleep="0.01"))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=job_dir, env=_env(job_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    newest_synced = kill_once_synced(proc, job_dir)
    shutil.rmtree(job_dir / "work")  # the VM is gone: only the store survives
    time.sleep(0.3)  # the killed darknet (PDEATHSIG) is gone too
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    logs = darknet_logs(job_dir)
    assert len(logs) == 2
    assert "Loading weights from" in logs[1]
    launches = [e["argv"] for e in journal(job_dir) if e["event"] == "process_start"]
    assert len(launches) == 2 and "-clear" not in launches[1]  # never -clear on a resume
    second = iterations(logs[1])
    assert second[0] >= newest_synced + 1 and second[-1] == 600
    resumed = [e for e in journal(job_dir) if e["event"] == "resume_from"]
    assert resumed and resumed[-1]["where"] == "store" and resumed[-1]["counter"] >= newest_synced
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 600


@pytest.mark.slow
def test_kill_9_mid_write_on_the_same_machine_skips_the_torn_backup(job_dir: Path) -> None:
    cfg_file = job_dir / "micro.cfg"
    cfg_file.write_text(cfg_file.read_text().replace("max_batches=250", "max_batches=400"))
    (job_dir / "job.yaml").write_text(
        job_yaml("alexeyab", sleep="0.005", extra_env=', FAKE_DARKNET_WRITE_DELAY: "1.5"'))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=job_dir, env=_env(job_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the second backup is being written (paused half-way)
        logs = darknet_logs(job_dir) if (job_dir / "jobs" / "det" / "logs").exists() else []
        if logs and logs[0].count("Saving weights to") >= 2:
            break
        time.sleep(0.05)
    else:
        pytest.fail("darknet never started its second backup")
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    torn = work_folder(job_dir, "det") / "backup" / "micro_last.weights"
    assert 0 < torn.stat().st_size < 248_196  # a torn local backup, newer (200) than anything valid
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0"))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = [e for e in journal(job_dir) if e["event"] == "resume_from"][-1]
    assert resumed["counter"] == 100 and resumed["where"] == "store"
    assert any("truncated" in reason for reason in resumed["skipped"])
    assert iterations(darknet_logs(job_dir)[1])[0] == 101
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 400


def test_truncated_newest_backup_is_skipped(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml("pjreddie", sleep="0"))
    backup = create_job_home(job_dir, "det", "darknet") / "backup"
    backup.mkdir(parents=True)
    shutil.copy(FIXTURES / "pjreddie" / "micro.backup.truncated", backup / "micro.backup")  # header says 200
    shutil.copy(FIXTURES / "pjreddie" / "micro_100.weights", backup / "micro_100.weights")
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    log = darknet_logs(job_dir)[0]
    assert re.search(r"Loading weights from .*micro_100\.weights", log)
    assert iterations(log)[0] == 101
    resumed = next(e for e in journal(job_dir) if e["event"] == "resume_from")
    assert resumed["counter"] == 100 and any("truncated" in r for r in resumed["skipped"])
    assert "truncated" in result.stderr


@pytest.mark.slow
def test_deadline_stop_loses_no_iteration_beyond_the_last_backup(job_dir: Path) -> None:
    cfg_file = job_dir / "micro.cfg"  # long enough that it cannot finish inside the 3 s session
    cfg_file.write_text(cfg_file.read_text().replace("max_batches=250", "max_batches=3000"))
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0.1", budget="3s"))
    first = cli(job_dir, "run", "job.yaml")
    assert first.returncode == 75, first.stderr[-3000:]  # paused: run again to continue
    log = darknet_logs(job_dir)[0]
    last_printed = iterations(log)[-1]
    assert last_printed < 3000
    synced = max(c for name, c in manifest_counters(job_dir) if c and name == "micro_last.weights")
    # stopped as soon as the backup was whole on disk: at most the iteration darknet had begun is lost
    assert 0 <= last_printed - synced <= 1
    cfg = load_cfg(job_dir / "micro.cfg")
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0"))
    second = cli(job_dir, "run", "job.yaml")
    assert second.returncode == 0, second.stderr[-3000:]
    assert iterations(darknet_logs(job_dir)[1])[0] == synced + 1
    final = work_folder(job_dir, "det") / "backup" / "micro_final.weights"
    assert DarknetWeightsValidator(cfg).validate(final).counter == 3000


@pytest.mark.slow
def test_ctrl_c_waits_for_the_next_backup_like_the_deadline(job_dir: Path) -> None:
    cfg_file = job_dir / "micro.cfg"  # long enough that it cannot finish before the signal
    cfg_file.write_text(cfg_file.read_text().replace("max_batches=250", "max_batches=3000"))
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0.01"))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=job_dir, env=_env(job_dir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # past the first backup (100), well into the next interval (not "recent")
        logs = darknet_logs(job_dir) if (job_dir / "jobs" / "det" / "logs").exists() else []
        if logs and iterations(logs[0]) and iterations(logs[0])[-1] >= 160:
            break
        time.sleep(0.02)
    else:
        pytest.fail("darknet did not get past iteration 160")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 75, stderr[-3000:]  # paused: run again to continue
    last_printed = iterations(darknet_logs(job_dir)[0])[-1]
    synced = max(c for name, c in manifest_counters(job_dir) if c and name == "micro_last.weights")
    # a clean stop after the next backup (200), not at once from the one at 100, and well before the one after
    # (darknet goes on for as long as the stop takes to reach it: one iteration here, ~20 on a loaded 2-core CI)
    assert synced >= 200 and 0 <= last_printed - synced < 50
    ends = [e for e in journal(job_dir) if e["event"] == "process_end"]
    assert ends[-1]["stopped_for"] == "signal" and ends[-1]["after_backup"] is True


def test_final_weights_listed_but_gone_from_the_store_are_trained_and_stored_again(job_dir: Path) -> None:
    """Issue 9 (lazy-mount trial, seed 106): the manifest naming ``_final`` reached Drive, its object did not. The
    re-run said so and trained again from ``_last``, but darknet's new ``_final`` (the same bytes) was taken for
    the one "already in the store" and never sent: completed, with no final weights on Drive."""
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab"))
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    store = PathStore(job_dir / "jobs" / "det" / "store")
    final = next(r for r in ManifestStore(store).load().records if r.name == "micro_final.weights")
    store.delete(final.key)
    again = cli(job_dir, "run", "job.yaml")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "recorded as completed, but its final weights micro_final.weights are gone" in again.stderr
    newest = max((r for r in ManifestStore(store).load().records if r.name == "micro_final.weights"),
                 key=lambda r: r.seq)
    assert newest.seq > final.seq and "final" in newest.tags
    path = store.local_path(newest.key)
    assert path is not None and path.read_bytes() == (work_folder(job_dir, "det") / "backup" /
                                                      "micro_final.weights").read_bytes()
    assert cli(job_dir, "run", "job.yaml").returncode == 0  # and now it is completed for good


def test_a_stop_while_darknet_writes_final_ends_completed(job_dir: Path) -> None:
    """Issue 9, case 14: a deadline (or Ctrl-C: the same clean stop) that came as darknet wrote ``_final`` stopped
    darknet mid-write and ended ``paused``. The stand-in pauses 1.5 s half-way through each weights file; the
    stop comes while ``_final`` is being written, with the last backup counted as recent (recent_backup: 1), so
    the rule stops at once unless it waits for the file being written."""
    text = job_yaml("alexeyab", extra_env=', FAKE_DARKNET_WRITE_DELAY: "1.5"')
    (job_dir / "job.yaml").write_text(text.replace("train: {", "train: {recent_backup: 1, "))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=job_dir, env=_env(job_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        logs = darknet_logs(job_dir) if (job_dir / "jobs" / "det" / "logs").exists() else []
        if logs and "micro_final.weights" in logs[0]:
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("darknet never began writing _final")
    time.sleep(0.3)  # inside the 1.5 s pause of the _final write
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert "completed" in stdout
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 250
    assert json.loads((job_dir / "jobs" / "det" / "state.json").read_text())["record"]["state"] == "completed"


def test_nan_divergence_fails_the_job_with_the_fix(job_dir: Path) -> None:
    """Issue 9, case 10: a NaN in the first iterations exited 2 ("bad job file; nothing was changed") and advised
    resuming from a checkpoint saved before the NaN, when none existed. It is a failed job (4): the message says
    no checkpoint precedes the NaN, so `run --retry` starts again from the beginning, and the re-run agrees."""
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0", extra_env=', FAKE_DARKNET_NAN_AT: "50"'))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 4, result.stderr[-2000:]
    assert "NaN" in result.stderr and "learning_rate" in result.stderr
    assert "no checkpoint was saved before it" in result.stderr and "--retry" in result.stderr
    assert "resume from a checkpoint saved before the NaN" not in result.stderr
    assert "Traceback" not in result.stderr
    problems = [e for e in journal(job_dir) if e["event"] == "darknet_problem"]
    assert problems[0]["problem"] == "nan_loss"
    again = cli(job_dir, "run", "job.yaml")
    assert again.returncode == 4 and "--retry" in again.stderr and "NaN" in again.stderr


def test_nan_after_a_backup_names_the_checkpoint_a_retry_resumes_from(job_dir: Path) -> None:
    """The stand-in backs up every 100 iterations (5 ms each): a NaN at 150 follows a whole backup at 100; the
    backups after it hold NaN weights and are not published."""
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", extra_env=', FAKE_DARKNET_NAN_AT: "150"'))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 4, result.stderr[-2000:]
    assert "run --retry resumes from iteration 100" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    # the fix the message names: a lower learning rate in the job file (a safe change), then --retry
    fixed = job_yaml("alexeyab").replace("train: {", "train: {learning_rate: 0.0001, ")
    (job_dir / "job.yaml").write_text(fixed)
    retried = cli(job_dir, "run", "job.yaml", "--retry")
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert iterations(darknet_logs(job_dir)[-1])[0] == 101
    assert "learning_rate=0.0001" in (job_dir / "jobs" / "det" / "darknet" / "micro.cfg").read_text()


def test_class_mismatch_is_a_config_error_naming_the_layer(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab").replace("classes: [box]", "classes: [box, ball]"))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode != 0
    assert "layer 10 [yolo]" in result.stderr and "set filters=21" in result.stderr


def test_pretrained_with_clear_on_the_first_session_only(job_dir: Path) -> None:
    weights = FIXTURES / "pjreddie" / "micro_100.weights"  # seen=400: without -clear darknet would start at 101
    text = job_yaml("alexeyab", sleep="0") + f'pretrained: "{weights}"\n'
    (job_dir / "job.yaml").write_text(text.replace("train: {", "train: {clear_pretrained: true, map: true, "))
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    (argv,) = [e["argv"] for e in journal(job_dir) if e["event"] == "process_start"]
    assert argv[-4:] == [str(weights), "-clear", "-dont_show", "-map"]
    assert iterations(darknet_logs(job_dir)[0])[0] == 1
    records = ManifestStore(PathStore(job_dir / "jobs" / "det" / "store")).load().records
    # the fake's mAP improves at 100 and 200: only the newest _best of the session stays tagged and kept
    assert [(r.counter, r.tags) for r in records if r.name == "micro_best.weights"] == [(200, ("best",))]


def test_pretrained_that_is_an_html_page_is_refused(job_dir: Path) -> None:
    page = job_dir / "darknet53.conv.74"
    page.write_text("<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title></html>")
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab") + f'pretrained: "{page}"\n')
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode != 0 and "HTML" in result.stderr


def test_tag_best_keeps_the_newest_best_of_each_session() -> None:
    def rec(seq: int, session: str, name: str = "micro_best.weights", tags: tuple[str, ...] = ()) -> ManifestRecord:
        return ManifestRecord(name=name, key=f"checkpoints/00000/{seq:08d}-{name}", counter=seq * 100, size=1,
                              sha256="0" * 64, created=float(seq), session=session, tags=tags, seq=seq)

    manifest = Manifest()
    for record in (rec(1, "s1"), rec(2, "s1"), rec(3, "s2"), rec(4, "s2", "micro_last.weights"), rec(5, "s2")):
        manifest = manifest.add(record)
        if record.name == "micro_best.weights":
            manifest = tag_best(manifest, record.key)
    assert [(r.seq, r.tags) for r in sorted(manifest.records, key=lambda r: r.seq)] == [
        (1, ()), (2, ("best",)), (3, ()), (4, ()), (5, ("best",))]


@pytest.mark.slow
def test_dataset_behind_a_path_alias_is_not_prepared_again_on_a_rerun(job_dir: Path) -> None:
    """The fingerprint must see the data through the alias the first run created, not a missing folder."""
    alias = job_dir.parent / "WORK1"
    cfg_file = job_dir / "micro.cfg"  # long enough to pause at the 2 s deadline
    cfg_file.write_text(cfg_file.read_text().replace("max_batches=250", "max_batches=3000"))
    text = job_yaml("alexeyab", sleep="0.05", budget="2s").replace("path: ./voc data", f'path: "{alias}/voc data"')
    (job_dir / "job.yaml").write_text(text + f'path_aliases: {{"{alias}": "{job_dir}"}}\n')
    for _ in range(2):
        result = cli(job_dir, "run", "job.yaml")
        assert result.returncode == 75, result.stderr[-3000:]
    steps = [(e["event"], e["step"]) for e in journal(job_dir) if e.get("step") == "dataset"]
    assert steps == [("step_done", "dataset"), ("step_skipped", "dataset")]


def test_editing_a_local_darknet_source_builds_again(job_dir: Path) -> None:
    """The darknet step's fingerprint follows a local source folder's content, not just the job file."""
    source = job_dir / "my darknet"
    (source / "examples").mkdir(parents=True)
    (source / "Makefile").write_text("GPU=0\n")
    detector = source / "examples" / "detector.c"
    detector.write_text("void test_detector() { show_image(); }\n")
    text = job_yaml("pjreddie").replace("darknet: {binary: ./bin/darknet, fork: pjreddie}",
                                        f'darknet: {{source: "{source}"}}')
    (job_dir / "job.yaml").write_text(text)
    spec = load_job_file(job_dir / "job.yaml")

    def darknet_fingerprint() -> str:
        job = DarknetJob(spec, JobPaths.for_spec(spec))
        return next(step.fingerprint for step in job.steps(None) if step.name == "darknet")  # type: ignore[arg-type]

    before = darknet_fingerprint()
    assert darknet_fingerprint() == before
    detector.write_text("void test_detector() { /* show_image(); */ }\n")  # the seed's hand edit
    assert darknet_fingerprint() != before


def test_raising_max_batches_and_reopening_trains_on_from_the_final_weights(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0"))
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    cfg = job_dir / "micro.cfg"
    cfg.write_text(cfg.read_text().replace("max_batches=250", "max_batches=350"))
    again = cli(job_dir, "run", "job.yaml")
    assert again.returncode == 0 and "--reopen" in again.stderr and len(darknet_logs(job_dir)) == 1
    reopened = cli(job_dir, "run", "job.yaml", "--reopen")
    assert reopened.returncode == 0, reopened.stderr[-3000:]
    second = darknet_logs(job_dir)[1]
    assert iterations(second)[0] == 251 and iterations(second)[-1] == 350  # continued, never -clear
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 350


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_pretrained_url_pauses_with_one_line_and_the_rerun_retries(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.darknet.job as darknet_job
    from jobs.darknet.download import download

    def quick(*args: object, **kwargs: object) -> Path:  # the real download; its backoff (31 s over 6 tries) cut to 0.3 s
        return download(*args, backoff=0.01, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(darknet_job, "download", quick)
    url = f"http://127.0.0.1:{_closed_port()}/x.weights"
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0") + f'pretrained: "{url}"\n')
    first = cli(job_dir, "run", "job.yaml")
    assert first.returncode == 75, first.stderr[-3000:]
    assert url in first.stderr and "Traceback" not in first.stderr
    assert "--retry" not in first.stderr and "check the URL" in first.stderr and "give its path" in first.stderr
    second = cli(job_dir, "run", "job.yaml")  # the same cell again: the download is tried again, no --retry
    assert second.returncode == 75, second.stderr[-3000:]
    assert url in second.stderr and "--retry" not in second.stderr and "Traceback" not in second.stderr
