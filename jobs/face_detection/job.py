"""The ``face_detection`` job kind: run the resumable pipeline over every input of the job.

Each run walks the inputs in a stable order: inputs finished earlier (summary or failure record with the same
fingerprint) are skipped, an interrupted one continues from its last committed chunk, and the stop request
(deadline, signal) is polled between batches. Outputs go to ``<job home>/<output>/``; a small
``batch_status.json`` there feeds ``orchestrator status`` (videos done/failed/total, frames, fps, ETA).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from jobs.base import Completed, JobContext, JobKind, RunOutcome, Stopped
from jobs.face_detection.detector import FaceDetector, RetinaFaceDetector, Thresholds, resolve_device
from jobs.face_detection.hw_video import choose_decoder, probe_video_hardware
from jobs.face_detection.inputs import InputPrefetcher, discover_inputs, output_names
from jobs.face_detection.partial import Progress, finished_state, read_json
from jobs.face_detection.paths import FacePaths
from jobs.face_detection.pipeline import FacePipeline, InputStatus, PipelineSettings
from jobs.face_detection.spec import TINY_RETINAFACE, FaceDetectionSpec
from jobs.face_detection.video_source import is_image
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import ConfigError
from orchestrator.core.paths import JobPaths


def build_detector(spec: FaceDetectionSpec, weights_cache: Path) -> tuple[FaceDetector, str]:
    """The detector the spec asks for and an id naming model + weights + thresholds (for fingerprints).

    The device is not part of the id: a job started on a CPU may continue on a GPU from its committed chunks.
    """
    thresholds = Thresholds(**spec.thresholds.model_dump())
    if spec.model == "haar":
        from jobs.face_detection.haar import HaarDetector

        return HaarDetector(), "haar"
    import torch

    from jobs.face_detection.importer import import_tiny_retinaface
    from jobs.face_detection.weights import load_retinaface

    device = resolve_device(spec.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda requested but no CUDA GPU is visible to torch; use device: auto or cpu")
    backbone = spec.model.removeprefix("retinaface-")
    assert spec.weights is not None  # the spec validator guarantees it for RetinaFace models
    weights = import_tiny_retinaface(weights_cache) if spec.weights == TINY_RETINAFACE else Path(spec.weights)
    model = load_retinaface(backbone, weights)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # safe: the inference size is fixed per video
    detector = RetinaFaceDetector(model, device, fp16=spec.fp16, thresholds=thresholds)
    size = weights.stat().st_size
    return detector, f"{spec.model}|{weights.name}|{size}|{thresholds}"


def _declared_frames(path: Path, frame_step: int) -> int:
    """Frames that will be processed, from the container's frame count (0 when unknown)."""
    if is_image(path):
        return 1
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        count = int(max(0, capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)) if capture.isOpened() else 0
    finally:
        capture.release()
    return -(-count // frame_step)


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

    def settings(self) -> PipelineSettings:
        s = self.spec
        return PipelineSettings(
            batch_size=s.batch_size, frame_step=s.frame_step, max_size=s.max_size, chunk_frames=s.chunk_frames,
            landmarks=s.landmarks, jpeg_quality=s.jpeg_quality,
        )

    def run(self, ctx: JobContext) -> RunOutcome:
        spec = self.spec
        inputs = discover_inputs(spec)
        names = output_names(inputs)
        detector, detector_id = build_detector(spec, self.kind_paths.weights_cache)
        decoder = choose_decoder(probe_video_hardware(), spec.video_decoder)
        if decoder != "opencv-cpu":  # another decoder's frames differ slightly: not the same results
            detector_id = f"{detector_id}|decoder={decoder}"
        pipeline = FacePipeline(detector, self.settings(), detector_id)
        pipeline.decoder = decoder
        files_of = self.kind_paths.input_files
        pipeline.prefetch = InputPrefetcher(
            inputs, self.kind_paths.prefetch, int(spec.prefetch_gb * 1e9),
            skip=lambda p: finished_state(files_of(names[p], is_image(p)), pipeline.fingerprint(p)) is not None)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        expected = {path: _declared_frames(path, spec.frame_step) for path in inputs}
        tally = _Tally(total_inputs=len(inputs), total_frames=sum(expected.values()))
        ctx.log.info("%d inputs, about %d frames to process, model %s", len(inputs), tally.total_frames, detector.name)
        for path in inputs:
            reason = ctx.stop_requested()
            if reason:
                return self._stopped(ctx, tally, reason)
            name = names[path]
            files = self.kind_paths.input_files(name)
            base = tally.frames_done

            def on_frames(done: int, base: int = base) -> None:
                tally.frames_now = base + done
                self._report(ctx, tally)

            def on_commit(progress: Progress, name: str = name, base: int = base) -> None:
                ctx.report_checkpoint(f"{name}#chunk{progress.chunks - 1}", counter=base + progress.frames_done,
                                      input=name, frames=progress.frames_done)

            result = pipeline.process(
                path, files, should_stop=lambda: ctx.stop_requested() is not None, on_frames=on_frames,
                on_commit=on_commit,
            )
            if result.status is InputStatus.STOPPED:
                tally.frames_now = base + result.frames_done
                return self._stopped(ctx, tally, ctx.stop_requested() or "stop")
            tally.frames_done = base + (result.frames_done if result.status is InputStatus.DONE else expected[path])
            tally.frames_now = tally.frames_done
            if result.status is InputStatus.DONE:
                tally.done += 1
            else:
                tally.failed += 1
                tally.failures[name] = result.reason
            if not result.skipped:
                ctx.record_event(f"input_{result.status.value}", input=str(path), name=name, frames=result.frames_done,
                                 faces=result.faces, reason=result.reason or None)
                ctx.log.info("%s: %s%s", name, result.status.value, f" ({result.reason})" if result.reason else "")
            self._report(ctx, tally)
        self._write_status(tally, finished=True)
        return Completed(f"{tally.done} inputs done, {tally.failed} failed")

    def _stopped(self, ctx: JobContext, tally: _Tally, reason: str) -> Stopped:
        self._report(ctx, tally)
        return Stopped(reason)

    def _report(self, ctx: JobContext, tally: _Tally) -> None:
        extra = tally.as_dict()
        ctx.report_progress(tally.frames_now, tally.total_frames or None, "frames", **{
            k: extra[k] for k in ("videos_done", "videos_failed", "videos_total")
        })
        now = time.monotonic()
        if now - tally.last_status_write >= 5.0:
            tally.last_status_write = now
            self._write_status(tally, finished=False)

    def _write_status(self, tally: _Tally, finished: bool) -> None:
        atomic_write_json(self.kind_paths.batch_status, {**tally.as_dict(), "finished": finished,
                                                          "updated": time.time()})

    def status_extra(self) -> dict[str, Any]:
        """Facts for ``orchestrator status`` beyond the progress line (which has videos done/failed/total)."""
        record = read_json(self.kind_paths.batch_status) or {}
        facts: dict[str, Any] = {"output": str(self.output_dir)}
        if record.get("fps"):
            facts["speed"] = f"{record['fps']} frames/s (last session)"
        failures = record.get("failures") or {}
        if failures:
            shown = [f"{name}: {reason}" for name, reason in list(failures.items())[:3]]
            more = f" (+{len(failures) - 3} more, see *.failed.json)" if len(failures) > 3 else ""
            facts["failed"] = "; ".join(shown) + more
        return facts


class _Tally:
    """Counters of one session's run over the inputs."""

    def __init__(self, total_inputs: int, total_frames: int) -> None:
        self.total_inputs, self.total_frames = total_inputs, total_frames
        self.done = self.failed = 0
        self.frames_done = 0  # frames of the inputs already finished (this run's walk)
        self.frames_now = 0  # including the input in progress
        self.failures: dict[str, str] = {}
        self.started = time.monotonic()
        self.start_frames: int | None = None
        self.last_status_write = 0.0

    def as_dict(self) -> dict[str, Any]:
        if self.start_frames is None:
            self.start_frames = self.frames_now
        elapsed = time.monotonic() - self.started
        gained = self.frames_now - self.start_frames
        fps = gained / elapsed if elapsed > 0 and gained > 0 else 0.0
        remaining = max(0, self.total_frames - self.frames_now)
        return {
            "videos_done": self.done,
            "videos_failed": self.failed,
            "videos_total": self.total_inputs,
            "frames_done": self.frames_now,
            "frames_total": self.total_frames,
            "fps": round(fps, 2),
            "eta_seconds": round(remaining / fps, 1) if fps > 0 else None,
            "failures": dict(self.failures),
        }
