"""The batched, resumable detection pipeline for one input video (or image).

Three stages overlap, joined by bounded queues so memory stays flat on long videos::

    decode thread  --frames-->  caller's thread: batch, detect  --results-->  writer thread: draw, JPEG,
    (OpenCV read, resize to                (same-size frames,                  detections lines, commit a
     the fixed inference size)              one forward pass per batch)         chunk every chunk_frames

The inference size is fixed per video (long side <= ``max_size``), so every batch has the same shape (no
cuDNN re-tuning) and the priors are built once. Boxes are mapped back to original-frame pixels. Chunks hold a
whole number of batches and resume restarts at a chunk boundary, so a resumed run sees exactly the same
batches as an uninterrupted one and writes identical detections. See ``partial.py`` for the files.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jobs.face_detection.annotate import draw_faces, encode_jpeg
from jobs.face_detection.detections import FrameDetections
from jobs.face_detection.detector import FaceDetector
from jobs.face_detection.inputs import InputPrefetcher
from jobs.face_detection.partial import (
    OutputFiles,
    Progress,
    commit_chunk,
    discard_partial,
    finished_state,
    load_progress,
    publish,
    read_json,
    record_failure,
    save_progress,
)
from jobs.face_detection.video_source import (
    InputError,
    TorchcodecSource,
    VideoSource,
    is_image,
    open_video,
    read_image,
    truncation_reason,
)


@dataclass(frozen=True)
class PipelineSettings:
    batch_size: int = 8
    frame_step: int = 1
    max_size: int | None = None
    chunk_frames: int = 256
    landmarks: bool = True
    jpeg_quality: int = 90
    queue_batches: int = 2

    @property
    def frames_per_chunk(self) -> int:
        """``chunk_frames`` rounded up to a whole number of batches."""
        return -(-self.chunk_frames // self.batch_size) * self.batch_size


class InputStatus(str, Enum):
    """How one input ended this session (``str`` values: they are journaled as ``input_<status>``)."""

    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class InputResult:
    name: str
    status: InputStatus
    reason: str = ""
    frames_done: int = 0
    faces: int = 0
    fps: float = 0.0
    skipped: bool = False  # finished in an earlier run


def inference_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    """(width, height) with the long side scaled down to ``max_size`` (never up)."""
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def input_fingerprint(path: Path) -> str:
    """Identity of an input file: size plus hashes of its first and last MiB (cheap on multi-GB videos)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(size - (1 << 20))
            digest.update(fh.read())
    return digest.hexdigest()[:24]


class _End:
    def __init__(self, source_frames: int) -> None:
        self.source_frames = source_frames


class _Stop:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class FacePipeline:
    """Runs one detector over inputs; ``detector_id`` names the model + weights + thresholds in fingerprints.

    While an input is processed, OpenCV's own worker pool is limited to one thread: the decode and writer
    threads already run beside torch's OpenMP workers, and OpenCV's actively-waiting pool on top of them
    oversubscribes small machines (seen here: the forward pass slowed down several times on 2 cores).
    """

    def __init__(self, detector: FaceDetector, settings: PipelineSettings, detector_id: str) -> None:
        self.detector = detector
        self.settings = settings
        self.detector_id = detector_id
        #: copies the next inputs off a slow mount while this one is processed (set by the job)
        self.prefetch: InputPrefetcher | None = None
        #: ``hw_video.choose_decoder``'s choice (set by the job): NVDEC on a GPU, else OpenCV on the CPU
        self.decoder = "opencv-cpu"
        #: ``process`` may run for several inputs at once (their decoders in parallel); detector calls take turns
        self.detect_lock = threading.Lock()
        self._active = 0
        self._active_lock = threading.Lock()
        self._cv2_threads = 0

    def fingerprint(self, path: Path) -> str:
        settings = {k: v for k, v in asdict(self.settings).items() if k != "queue_batches"}
        text = f"{input_fingerprint(path)}|{self.detector_id}|{sorted(settings.items())}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def process(
        self,
        path: Path,
        files: OutputFiles,
        should_stop: Callable[[], bool] = lambda: False,
        on_frames: Callable[[int], None] = lambda done: None,
        on_commit: Callable[[Progress], None] = lambda progress: None,
    ) -> InputResult:
        """Process (or resume, or skip) one input; never raises for a bad input (it is recorded as failed).

        ``should_stop`` is polled between batches; ``on_frames(frames_done)`` is called after each batch and
        ``on_commit(progress)`` (from the writer thread) after each durably committed chunk. With ``prefetch``
        set, the input is read from its local copy (results still name ``path``), deleted afterwards."""
        with self._active_lock:
            if self._active == 0:
                self._cv2_threads = cv2.getNumThreads()
                cv2.setNumThreads(1)
            self._active += 1
        read_from = self.prefetch.take(path) if self.prefetch is not None else path
        try:
            return self._process(path, files, should_stop, on_frames, on_commit, read_from)
        finally:
            with self._active_lock:
                self._active -= 1
                if self._active == 0:
                    cv2.setNumThreads(self._cv2_threads)
            if self.prefetch is not None:
                self.prefetch.release(path)

    def _process(
        self,
        path: Path,
        files: OutputFiles,
        should_stop: Callable[[], bool],
        on_frames: Callable[[int], None],
        on_commit: Callable[[Progress], None],
        source_path: Path,
    ) -> InputResult:
        try:
            fingerprint = self.fingerprint(source_path)
        except OSError as exc:
            return InputResult(files.name, InputStatus.FAILED, f"cannot read {path.name}: {exc}")
        finished = finished_state(files, fingerprint)
        if finished == "done":
            discard_partial(files)  # left behind when killed between publishing and tidying up
            summary = _read_summary(files)
            return InputResult(
                files.name, InputStatus.DONE, frames_done=int(summary.get("frames_processed", 0)),
                faces=int(summary.get("faces_total", 0)), skipped=True,
            )
        if finished == "failed":
            record = _read_failed(files)
            return InputResult(files.name, InputStatus.FAILED, str(record.get("reason", "")), skipped=True)
        if is_image(path):
            return self._process_image(path, files, fingerprint, source_path)
        try:
            source = open_video(source_path, self.decoder)
        except InputError as exc:
            record_failure(files, fingerprint, str(exc))
            return InputResult(files.name, InputStatus.FAILED, str(exc))
        try:
            return _VideoRun(self, path, files, fingerprint, source, should_stop, on_frames, on_commit).run()
        finally:
            source.close()

    def _process_image(self, path: Path, files: OutputFiles, fingerprint: str, source_path: Path) -> InputResult:
        files = OutputFiles(files.out_dir, files.name, image=True)
        started = time.monotonic()
        try:
            image = read_image(source_path)
        except InputError as exc:
            record_failure(files, fingerprint, str(exc))
            return InputResult(files.name, InputStatus.FAILED, str(exc))
        height, width = image.shape[:2]
        small_w, small_h = inference_size(width, height, self.settings.max_size)
        small = image if (small_w, small_h) == (width, height) else cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        faces = [f.scaled(width / small_w, height / small_h) for f in self.detector.detect([small])[0]]
        line = FrameDetections(0, 0.0, tuple(faces)).to_json_line()
        jpeg = encode_jpeg(draw_faces(image, faces, self.settings.landmarks), self.settings.jpeg_quality)
        progress = load_progress(files, fingerprint)
        progress.frames_done, progress.faces = 1, len(faces)
        progress.frames_with_faces, progress.max_faces = int(bool(faces)), len(faces)
        progress.seconds, progress.complete, progress.source_frames = time.monotonic() - started, True, 1
        commit_chunk(files, progress, [line], [jpeg])
        publish(files, progress, (width, height), 0.0, self.summary(path, files, progress, (width, height),
                                                                      (small_w, small_h), 0.0))
        return InputResult(files.name, InputStatus.DONE, frames_done=1, faces=len(faces))

    def summary(
        self, path: Path, files: OutputFiles, progress: Progress, size: tuple[int, int], small: tuple[int, int],
        fps: float,
    ) -> dict[str, Any]:
        frames = progress.frames_done
        return {
            "fingerprint": progress.fingerprint,
            "input": str(path),
            "name": files.name,
            "status": "done",
            "model": self.detector.name,
            "width": size[0],
            "height": size[1],
            "inference_size": list(small),
            "source_fps": fps,
            "source_frames": progress.source_frames,
            "frame_step": self.settings.frame_step,
            "frames_processed": frames,
            "faces_total": progress.faces,
            "faces_per_frame_mean": round(progress.faces / frames, 4) if frames else 0.0,
            "faces_per_frame_max": progress.max_faces,
            "frames_with_faces": progress.frames_with_faces,
            "processing_seconds": round(progress.seconds, 3),
            "fps_achieved": round(frames / progress.seconds, 3) if progress.seconds > 0 else 0.0,
            "detections_file": files.detections.name,
            "video_files": [files.video.name],
        }


def _read_summary(files: OutputFiles) -> dict[str, Any]:
    return read_json(files.summary) or {}


def _read_failed(files: OutputFiles) -> dict[str, Any]:
    return read_json(files.failed) or {}


class _VideoRun:
    """One session's processing of one video: the three stages and their hand-over."""

    def __init__(
        self, pipeline: FacePipeline, path: Path, files: OutputFiles, fingerprint: str,
        source: VideoSource | TorchcodecSource,
        should_stop: Callable[[], bool], on_frames: Callable[[int], None], on_commit: Callable[[Progress], None],
    ) -> None:
        self.pipeline, self.path, self.files, self.source = pipeline, path, files, source
        self.settings = pipeline.settings
        self.should_stop, self.on_frames, self.on_commit = should_stop, on_frames, on_commit
        self.progress = load_progress(files, fingerprint)
        info = source.info
        self.size = (info.width, info.height)
        self.small = inference_size(info.width, info.height, self.settings.max_size)
        self.out_fps = info.fps / self.settings.frame_step if info.fps else 0.0
        self.abort = threading.Event()
        capacity = max(1, self.settings.queue_batches)
        self.frames_q: queue.Queue[Any] = queue.Queue(maxsize=capacity * self.settings.batch_size)
        self.results_q: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self.outcome: InputResult | None = None
        self.writer_error: BaseException | None = None
        self.session_start = time.monotonic()

    # -- helpers ---------------------------------------------------------------------------------------------
    def _put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.abort.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self.abort.is_set():
                    return _Failure(RuntimeError("pipeline aborted"))

    # -- stages ----------------------------------------------------------------------------------------------
    def _decode(self) -> None:
        step = self.settings.frame_step
        try:
            for index, frame in self.source.frames(self.progress.next_frame, step):
                height, width = frame.shape[:2]
                small = frame
                if (width, height) != self.small:
                    small = cv2.resize(frame, self.small, interpolation=cv2.INTER_AREA)
                if not self._put(self.frames_q, (index, frame, small)):
                    return
            self._put(self.frames_q, _End(self.source.position))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self._put(self.frames_q, _Failure(exc))

    def _write(self) -> None:
        lines: list[str] = []
        jpegs: list[bytes] = []
        pending = Progress(fingerprint="")  # counters of the chunk being built
        progress, settings, fps = self.progress, self.settings, self.source.info.fps
        last_commit = self.session_start

        def commit() -> None:
            nonlocal lines, jpegs, last_commit
            now = time.monotonic()
            progress.frames_done += pending.frames_done
            progress.faces += pending.faces
            progress.frames_with_faces += pending.frames_with_faces
            progress.max_faces = max(progress.max_faces, pending.max_faces)
            progress.next_frame = pending.next_frame
            progress.seconds += now - last_commit
            last_commit = now
            commit_chunk(self.files, progress, lines, jpegs)
            self.on_commit(progress)
            lines, jpegs = [], []
            pending.frames_done = pending.faces = pending.frames_with_faces = pending.max_faces = 0

        try:
            while True:
                item = self._get(self.results_q)
                if isinstance(item, _Failure):
                    return
                if isinstance(item, (_End, _Stop)):
                    if lines:
                        commit()
                    if isinstance(item, _End):
                        self._finish(item.source_frames)
                    return
                for index, frame, faces in item:
                    lines.append(FrameDetections(index, index / fps if fps else 0.0, tuple(faces)).to_json_line())
                    jpegs.append(encode_jpeg(draw_faces(frame, faces, settings.landmarks), settings.jpeg_quality))
                    pending.frames_done += 1
                    pending.faces += len(faces)
                    pending.frames_with_faces += bool(faces)
                    pending.max_faces = max(pending.max_faces, len(faces))
                    pending.next_frame = index + settings.frame_step
                if len(lines) >= settings.frames_per_chunk:
                    commit()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.writer_error = exc
            self.abort.set()

    def _finish(self, source_frames: int) -> None:
        progress, files = self.progress, self.files
        reason = truncation_reason(self.source.info, source_frames)
        if reason is not None:
            record_failure(files, progress.fingerprint, reason)
            self.outcome = InputResult(files.name, InputStatus.FAILED, reason, progress.frames_done, progress.faces)
            return
        progress.complete, progress.source_frames = True, source_frames
        save_progress(files, progress)
        summary = self.pipeline.summary(self.path, files, progress, self.size, self.small, self.source.info.fps)
        publish(files, progress, self.size, self.out_fps, summary)
        self.outcome = InputResult(
            files.name, InputStatus.DONE, frames_done=progress.frames_done, faces=progress.faces,
            fps=summary["fps_achieved"],
        )

    # -- the caller's thread: batching and inference ---------------------------------------------------------
    def run(self) -> InputResult:
        progress, files = self.progress, self.files
        if progress.complete:
            self._finish(progress.source_frames)
            assert self.outcome is not None
            return self.outcome
        decoder = threading.Thread(target=self._decode, name=f"decode:{files.name}", daemon=True)
        writer = threading.Thread(target=self._write, name=f"write:{files.name}", daemon=True)
        decoder.start()
        writer.start()
        done = progress.frames_done
        failure: BaseException | None = None
        end: Any = _Stop()
        try:
            while True:
                if self.should_stop():
                    break
                batch, end_item = self._next_batch()
                if batch:
                    with self.pipeline.detect_lock:  # inputs processed at once share the detector (one GPU)
                        faces = self.pipeline.detector.detect([small for _, _, small in batch])
                    results = []
                    for (index, frame, _), found in zip(batch, faces):
                        sx, sy = frame.shape[1] / self.small[0], frame.shape[0] / self.small[1]
                        results.append((index, frame, [f.scaled(sx, sy) for f in found] if (sx, sy) != (1, 1) else found))
                    if not self._put(self.results_q, results):
                        break
                    done += len(batch)
                    self.on_frames(done)
                if isinstance(end_item, _Failure):
                    failure = end_item.error
                    break
                if isinstance(end_item, _End):
                    end = end_item
                    break
        except BaseException:
            self.abort.set()
            raise
        finally:
            # the writer commits what it has (a whole number of batches) on _End/_Stop; aborted, it drops it
            if not self.abort.is_set():
                self._put(self.results_q, _Stop() if failure is not None else end)
            writer.join()
            self.abort.set()  # releases the decoder if it waits on a full queue
            decoder.join()
        if self.writer_error is not None:
            raise self.writer_error
        if failure is not None:
            if isinstance(failure, InputError):
                record_failure(files, progress.fingerprint, str(failure))
                return InputResult(files.name, InputStatus.FAILED, str(failure), progress.frames_done, progress.faces)
            raise failure
        if self.outcome is not None:
            return self.outcome
        return InputResult(files.name, InputStatus.STOPPED, "stop requested", progress.frames_done, progress.faces)

    def _next_batch(self) -> tuple[list[tuple[int, np.ndarray, np.ndarray]], Any]:
        batch: list[tuple[int, np.ndarray, np.ndarray]] = []
        while len(batch) < self.settings.batch_size:
            item = self._get(self.frames_q)
            if isinstance(item, (_End, _Failure)):
                return batch, item
            batch.append(item)
        return batch, None

