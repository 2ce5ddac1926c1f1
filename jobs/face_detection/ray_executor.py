"""``executor: {type: ray, ...}``: a face job's chunks made by Ray actors, committed by the session's process.

One actor per worker loads the model once (on its GPU with ``gpus_per_worker: 1``, on CPU with 0) and makes
chunks on request: ``make_chunk(input, index)`` returns the chunk's bytes (``chunks.py``). The driver (this
process, the only writer) cuts the work into *lanes* - runs of consecutive chunks of one input - so four videos
on two workers go two by two, and one long video is spread over both. A lane is fed to one actor one chunk at
a time with the next one queued behind it (the actor keeps the video open, so a lane reads its part of the file
once). Each returned chunk is committed in the ledger as it arrives (exactly once: a duplicate is dropped),
and an input is published as soon as its chunks are complete - the same protocol as the local executor, so
the outputs are byte-identical.

Failures: the driver killed (``kill -9``) loses only chunks not committed yet; the next session plans its lanes
from the ledger. An actor that dies (its process killed, its node lost) has its in-flight chunks put back at
the front of the queue for the next free actor, and a replacement actor is started (at most ``workers``
replacements per session). Progress and ``status`` count the chunks committed by all workers.

Ray is imported only here, and this module only when a job asks for it (``pip install 'gpu-orchestrator[ray]'``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.face_detection.chunks import ChunkResult, InputStatus, missing_spans, split_span
from jobs.face_detection.executor import ExecutorHooks, InputTask, finish_input
from jobs.face_detection.ledger import FaceLedger, InputOutcome
from jobs.face_detection.spec import FaceDetectionSpec, RayExecutorSpec
from orchestrator.core.errors import ConfigError
from orchestrator.core.install import install_hint

RAY_INSTALL_HINT = install_hint("ray")
IN_FLIGHT_PER_WORKER = 2  # one chunk being made, the next queued behind it (no idle gap between chunks)


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"executor.type 'ray' needs Ray, which is not installed: {RAY_INSTALL_HINT}") from exc
    return ray


class FaceWorker:
    """The actor body: holds the model, makes chunks (wrapped by ``ray.remote`` at run time)."""

    def __init__(self, spec: FaceDetectionSpec, weights: bytes | None, weights_name: str, pipeline_id: str,
                 gpus: float, threads: int) -> None:
        import torch

        from jobs.face_detection.build import build_detector, pipeline_settings
        from jobs.face_detection.pipeline import FacePipeline

        torch.set_num_threads(threads)
        weights_path = None
        if weights is not None:
            folder = Path(tempfile.mkdtemp(prefix="face-worker-"))
            weights_path = folder / weights_name
            weights_path.write_bytes(weights)
        device = "cuda" if gpus > 0 else "cpu"
        detector, _ = build_detector(spec, Path(tempfile.gettempdir()), device_name=device, weights=weights_path)
        self.pipeline = FacePipeline(detector, pipeline_settings(spec), pipeline_id)
        self.makers: dict[str, Any] = {}

    def pid(self) -> int:
        return os.getpid()

    def make_chunk(self, path: str, name: str, fingerprint: str, index: int, image: bool) -> tuple[str, bytes]:
        """``("ok", chunk bytes)`` or ``("failed", reason)`` for an input that cannot be read."""
        from jobs.face_detection.pipeline import ChunkMaker
        from jobs.face_detection.video_source import InputError

        if image:
            try:
                return "ok", self.pipeline.image_chunk(Path(path), name, fingerprint).to_bytes()
            except InputError as exc:
                return "failed", str(exc).encode()
        maker = self.makers.get(name)
        if maker is None:
            for other in self.makers.values():
                other.close()
            self.makers = {name: ChunkMaker(self.pipeline, Path(path), name, fingerprint)}
            maker = self.makers[name]
        made: list[ChunkResult] = []
        result = maker.run(index, index + 1, made.append)
        if result.status is InputStatus.FAILED:
            return "failed", result.reason.encode()
        return "ok", made[0].to_bytes()


@dataclass
class _Lane:
    """Consecutive chunks ``next .. stop-1`` of one input (``stop`` None: until the source ends)."""

    task: InputTask
    next: int
    stop: int | None

    @property
    def size(self) -> float:
        return float("inf") if self.stop is None else self.stop - self.next


@dataclass
class _Worker:
    actor: Any
    pid: int
    lane: _Lane | None = None
    in_flight: deque[tuple[Any, InputTask, int]] = field(default_factory=deque)  # (ref, task, index)


def plan_lanes(tasks: list[InputTask], ledger: FaceLedger, workers: int) -> list[_Lane]:
    """The lanes of every task's missing chunks, each closed run split so there is work for every worker;
    biggest first, so the longest lanes do not start last."""
    lanes: list[_Lane] = []
    parts = max(1, -(-workers // max(1, len(tasks))))
    for task in tasks:
        if task.image:
            lanes.append(_Lane(task, 0, 1))
            continue
        for first, stop in missing_spans(ledger.chunks(task.name, task.fingerprint), task.expected_chunks):
            if stop is None:  # the open tail: split up to the expected end, the last part stays open
                end = max(first + 1, task.expected_chunks)
                pieces = split_span(first, end, parts)
                lanes += [_Lane(task, a, b) for a, b in pieces[:-1]] + [_Lane(task, pieces[-1][0], None)]
            else:
                lanes += [_Lane(task, a, b) for a, b in split_span(first, stop, parts)]
    return sorted(lanes, key=lambda lane: lane.size, reverse=True)


class RayExecutor:
    def __init__(self, spec: FaceDetectionSpec, executor: RayExecutorSpec, weights: Path | None, pipeline_id: str,
                 logger: logging.Logger | None = None, poll_seconds: float = 0.5) -> None:
        self.spec, self.config, self.weights, self.pipeline_id = spec, executor, weights, pipeline_id
        self.log = logger or logging.getLogger(__name__)
        self.poll_seconds = poll_seconds
        self.workers: list[_Worker] = []
        self.restarts = 0
        self.submissions: dict[tuple[str, int], int] = {}  # (input, chunk) -> times sent to a worker
        self.after_commit: Any = None  # test seam: called with (executor, chunk) after each commit
        self._ray: Any = None
        self._started_cluster = False
        self._alive_at_end = 0
        self.workers_ready_at: float | None = None

    # -- cluster and actors ----------------------------------------------------------------------------------

    def _connect(self) -> Any:
        ray = import_ray()
        if not ray.is_initialized():
            root = str(Path(__file__).resolve().parents[2])  # the folder holding the jobs package
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            address = self.config.address
            self.log.info("ray: %s", "starting a local cluster" if address is None else f"joining {address}")
            ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": path}}, logging_level=logging.WARNING,
                     log_to_driver=False, include_dashboard=False)
            self._started_cluster = True
        self._ray = ray
        return ray

    def _start_worker(self) -> _Worker:
        ray = self._ray
        config = self.config
        weights = None if self.weights is None else ray.put(self.weights.read_bytes())
        actor_class = ray.remote(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker,
                                 max_restarts=0, max_task_retries=0)(FaceWorker)
        actor = actor_class.remote(self.spec, weights, self.weights.name if self.weights else "", self.pipeline_id,
                                   config.gpus_per_worker, config.cpus_per_worker)
        return _Worker(actor, pid=ray.get(actor.pid.remote()))

    def worker_pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def status(self) -> dict[str, Any]:
        alive = len(self.workers) if self.workers else self._alive_at_end  # after the run: alive at its end
        return {"executor": "ray", "workers": self.config.workers, "workers_alive": alive,
                "worker_restarts": self.restarts}

    # -- the driver loop -------------------------------------------------------------------------------------

    def run(self, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        ray = self._connect()
        try:
            self.workers = [self._start_worker() for _ in range(self.config.workers)]
            self.workers_ready_at = time.monotonic()  # models loaded: what follows is chunk work
            self.log.info("ray: %d workers (pids %s), %s GPU each", len(self.workers), self.worker_pids(),
                          self.config.gpus_per_worker)
            return self._drive(ray, tasks, ledger, hooks)
        finally:
            self._alive_at_end = len(self.workers)
            for worker in self.workers:
                ray.kill(worker.actor, no_restart=True)
            self.workers = []
            if self._started_cluster:
                ray.shutdown()

    def _drive(self, ray: Any, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        lanes = deque(plan_lanes(tasks, ledger, self.config.workers))
        open_tasks = {t.name: t for t in tasks}
        ended: set[str] = set()  # inputs finished or failed: their remaining lanes are dropped
        while open_tasks:
            if hooks.should_stop():
                return InputStatus.STOPPED
            for worker in self.workers:
                self._feed(worker, lanes, ended)
            refs = [ref for w in self.workers for ref, _, _ in w.in_flight]
            if not refs:
                if lanes:
                    raise RuntimeError("ray: no worker is left to make the remaining chunks")
                break  # every lane made: inputs whose end was not reached are completed below
            ready, _ = ray.wait(refs, num_returns=1, timeout=self.poll_seconds)
            for ref in ready:
                self._collect(ray, ref, lanes, ledger, hooks, open_tasks, ended)
        for task in list(open_tasks.values()):  # lanes ran out before the source's end: one more open lane
            if ledger.chunks(task.name, task.fingerprint).complete:
                hooks.on_finished(task, finish_input(task, ledger, self.spec.video))
            else:
                return self._drive(ray, [task], ledger, hooks)
        return InputStatus.DONE

    def _feed(self, worker: _Worker, lanes: deque[_Lane], ended: set[str]) -> None:
        while len(worker.in_flight) < IN_FLIGHT_PER_WORKER:
            lane = worker.lane
            if lane is None or lane.task.name in ended or (lane.stop is not None and lane.next >= lane.stop):
                if worker.in_flight:
                    return  # finish this lane's chunks before starting another (the actor reads in order)
                while lanes and lanes[0].task.name in ended:
                    lanes.popleft()
                if not lanes:
                    worker.lane = None
                    return
                lane = worker.lane = lanes.popleft()
            task, index = lane.task, lane.next
            ref = worker.actor.make_chunk.remote(str(task.path), task.name, task.fingerprint, index, task.image)
            worker.in_flight.append((ref, task, index))
            key = (task.name, index)
            self.submissions[key] = self.submissions.get(key, 0) + 1
            lane.next += 1

    def _collect(self, ray: Any, ref: Any, lanes: deque[_Lane], ledger: FaceLedger, hooks: ExecutorHooks,
                 open_tasks: dict[str, InputTask], ended: set[str]) -> None:
        worker = next(w for w in self.workers if any(r == ref for r, _, _ in w.in_flight))
        try:
            status, payload = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._replace(worker, lanes, exc)
            return
        entry = next(e for e in worker.in_flight if e[0] == ref)
        worker.in_flight.remove(entry)
        _, task, index = entry
        if task.name in ended:
            return
        if status == "failed":
            reason = payload.decode()
            ledger.record_failure(task.name, task.fingerprint, reason)
            self._end(task, InputOutcome(InputStatus.FAILED, reason), hooks, open_tasks, ended)
            return
        chunk = ChunkResult.from_bytes(payload)
        end = ledger.chunks(task.name, task.fingerprint).end
        if end is not None and index > end:
            return  # made after the source's end was known (a lane's queued chunk): nothing to keep
        if ledger.commit(chunk) is not None:
            hooks.on_commit(chunk)
            if self.after_commit is not None:
                self.after_commit(self, chunk)
        lane = worker.lane
        if chunk.end_of_stream and lane is not None and lane.task.name == task.name:
            lane.stop = index + 1 if lane.stop is None else min(lane.stop, index + 1)  # nothing after the end
        state = ledger.chunks(task.name, task.fingerprint)
        if state.complete:
            self._end(task, finish_input(task, ledger, self.spec.video), hooks, open_tasks, ended)

    def _end(self, task: InputTask, outcome: InputOutcome, hooks: ExecutorHooks, open_tasks: dict[str, InputTask],
             ended: set[str]) -> None:
        ended.add(task.name)
        open_tasks.pop(task.name, None)
        hooks.on_finished(task, outcome)

    def _replace(self, worker: _Worker, lanes: deque[_Lane], error: BaseException) -> None:
        """A dead actor: its uncommitted chunks go back to the front of the queue; a new actor takes its place."""
        self.workers.remove(worker)
        lost = [index for _, _, index in worker.in_flight]
        lane = worker.lane
        if lane is not None and lost:
            lanes.appendleft(_Lane(lane.task, lost[0], lane.stop))
        self.log.warning("ray: worker pid %d died (%s); chunks %s of %s go to another worker", worker.pid,
                         type(error).__name__, lost, lane.task.name if lane else "?")
        if self.restarts < self.config.workers:
            self.restarts += 1
            self.workers.append(self._start_worker())
