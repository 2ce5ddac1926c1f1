"""The batched detection pipeline: turns a run of chunks of one input into :class:`ChunkResult` values.

Three stages overlap, joined by bounded queues so memory stays flat on long videos::

    decode thread  --frames-->  caller's thread: batch, detect  --results-->  writer thread: draw, encode the
    (OpenCV read, resize to                (same-size frames,                  video segment, detections lines
     the fixed inference size)              one forward pass per batch)         --chunks-->  commit thread
                                                                                (hands each chunk over, in order)

The inference size is fixed per video (long side <= ``max_size``), so every batch has the same shape (no
cuDNN re-tuning) and the priors are built once. Boxes are mapped back to original-frame pixels. A chunk holds
a whole number of batches and a run starts on a chunk boundary, so any split of an input into runs (a resume,
several Ray workers) sees exactly the same batches as one uninterrupted run, and makes identical chunks
(``chunks.py``). Committing them is the caller's business (``executor.py``, ``ledger.py``).
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jobs.face_detection.annotate import draw_faces, encode_jpeg
from jobs.face_detection.chunks import ChunkResult, InputStatus, SourceFacts, chunk_start_frame
from jobs.face_detection.detections import FrameDetections
from jobs.face_detection.detector import FaceDetector
from jobs.face_detection.video_out import SegmentEncoder, segment_encoder
from jobs.face_detection.video_source import (
    FramePool,
    InputError,
    TorchcodecSource,
    VideoSource,
    is_image,
    open_video,
    read_image,
)


@dataclass(frozen=True)
class PipelineSettings:
    batch_size: int = 8
    frame_step: int = 1
    max_size: int | None = None
    chunk_frames: int = 256
    landmarks: bool = True
    jpeg_quality: int = 90
    video_format: str = "mp4"
    queue_batches: int = 2
    #: finished chunks that may wait for their commit while the next ones are made (0, and with ``video: none``:
    #: the writer commits each itself): a commit through a store on the Drive mount costs several round trips
    commit_ahead: int = 4

    @property
    def frames_per_chunk(self) -> int:
        """``chunk_frames`` rounded up to a whole number of batches."""
        return -(-self.chunk_frames // self.batch_size) * self.batch_size


@dataclass(frozen=True)
class RunResult:
    """How a run of chunks ended: DONE (its chunks made, or the source ended), STOPPED, or FAILED (the input
    cannot be read: ``reason``)."""

    status: InputStatus
    reason: str = ""


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


class _RunEnd:
    """The run's last chunk is complete (the source goes on)."""


class _Stop:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class FacePipeline:
    """Runs one detector over inputs; ``detector_id`` names the model + weights + thresholds in fingerprints.

    While chunks are made, OpenCV's own worker pool is limited to one thread: the decode and writer threads
    already run beside torch's OpenMP workers, and OpenCV's actively-waiting pool on top of them
    oversubscribes small machines (seen here: the forward pass slowed down several times on 2 cores).
    """

    def __init__(self, detector: FaceDetector, settings: PipelineSettings, detector_id: str) -> None:
        self.detector = detector
        self.settings = settings
        self.detector_id = detector_id
        #: ``hw_video.choose_decoder``'s choice (set by the job): NVDEC on a GPU, else OpenCV on the CPU
        self.decoder = "opencv-cpu"
        #: runs of several inputs may be made at once (their decoders in parallel); detector calls take turns
        self.detect_lock = threading.Lock()
        self._active = 0  # runs in progress: OpenCV's pool is limited while any is
        self._active_lock = threading.Lock()
        self._cv2_threads = 0

    @contextmanager
    def opencv_limited(self) -> Iterator[None]:
        """OpenCV's pool at one thread while any run is in progress; restored when the last one ends."""
        with self._active_lock:
            if self._active == 0:
                self._cv2_threads = cv2.getNumThreads()
                cv2.setNumThreads(1)
            self._active += 1
        try:
            yield
        finally:
            with self._active_lock:
                self._active -= 1
                if self._active == 0:
                    cv2.setNumThreads(self._cv2_threads)

    def fingerprint(self, path: Path) -> str:
        """Input file + detector + every setting that changes a chunk's bytes."""
        settings = {k: v for k, v in asdict(self.settings).items() if k not in ("queue_batches", "commit_ahead")}
        text = f"{input_fingerprint(path)}|{self.detector_id}|{sorted(settings.items())}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def image_chunk(self, path: Path, name: str, fingerprint: str) -> ChunkResult:
        """An image as its one chunk; raises InputError when it cannot be decoded."""
        started = time.monotonic()
        image = read_image(path)
        height, width = image.shape[:2]
        small_w, small_h = inference_size(width, height, self.settings.max_size)
        small = image if (small_w, small_h) == (width, height) else cv2.resize(
            image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        faces = [f.scaled(width / small_w, height / small_h) for f in self.detector.detect([small])[0]]
        line = FrameDetections(0, 0.0, tuple(faces)).to_json_line()
        jpeg = b"" if self.settings.video_format == "none" else encode_jpeg(
            draw_faces(image, faces, self.settings.landmarks), self.settings.jpeg_quality)
        return ChunkResult(
            name=name, fingerprint=fingerprint, index=0, frames=1, faces=len(faces),
            frames_with_faces=int(bool(faces)), max_faces=len(faces), seconds=time.monotonic() - started,
            end_of_stream=True, source_frames=1, source=SourceFacts(width, height, 0.0, 1, small_w, small_h),
            detections=line.encode(), video=jpeg,
        )


class ChunkMaker:
    """Makes chunks of one video, keeping the video open between runs (a run that continues where the last
    one ended does not re-read the file from its start)."""

    def __init__(self, pipeline: FacePipeline, path: Path, name: str, fingerprint: str) -> None:
        """``path`` is where the video is read (a prefetched local copy, or the input itself)."""
        self.pipeline, self.path, self.name, self.fingerprint = pipeline, path, name, fingerprint
        self.settings = pipeline.settings
        self.source: VideoSource | TorchcodecSource | None = None

    def open(self) -> None:
        """Open the video ahead of the first run (an unreadable one is reported by ``run``)."""
        if self.source is None:
            try:
                self.source = open_video(self.path, self.pipeline.decoder)
            except InputError:
                pass

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    def run(
        self,
        first: int,
        stop: int | None,
        on_chunk: Callable[[ChunkResult], None],
        should_stop: Callable[[], bool] = lambda: False,
        on_frames: Callable[[int], None] = lambda frames: None,
        on_decoded: Callable[[], None] = lambda: None,
    ) -> RunResult:
        """Make chunks ``first .. stop-1`` (``stop`` None: to the end of the source), handing each to
        ``on_chunk`` (in order, in the commit thread; with ``commit_ahead: 0`` or ``video: none`` the writer); every
        chunk handed over is through ``on_chunk`` when this returns. ``on_decoded`` is called (in the decode
        thread) once the source has ended and every frame is read. Never raises for an unreadable input."""
        start = chunk_start_frame(first, self.settings.frames_per_chunk, self.settings.frame_step)
        if self.source is not None and self.source.position > start:
            self.close()  # behind the reader: open again
        try:
            if self.source is None:
                self.source = open_video(self.path, self.pipeline.decoder)
        except InputError as exc:
            return RunResult(InputStatus.FAILED, str(exc))
        try:
            with self.pipeline.opencv_limited():
                return _ChunkRun(self, first, stop, on_chunk, should_stop, on_frames, on_decoded).run()
        except InputError as exc:
            self.close()
            return RunResult(InputStatus.FAILED, str(exc))
        except BaseException:
            self.close()
            raise


class _ChunkBuilder:
    """The chunk the writer is filling: detections lines, the video segment encoder, counters."""

    def __init__(self, run: _ChunkRun, index: int) -> None:
        self.index = index
        self.lines: list[str] = []
        self.encoder: SegmentEncoder | None = run.new_encoder()
        self.frames = self.faces = self.with_faces = self.max_faces = 0
        self.started = time.monotonic()

    def add(self, index: int, frame: np.ndarray | None, faces: list[Any], fps: float, landmarks: bool) -> None:
        self.lines.append(FrameDetections(index, index / fps if fps else 0.0, tuple(faces)).to_json_line())
        if self.encoder is not None and frame is not None:  # video: none draws and encodes nothing
            self.encoder.add(draw_faces(frame, faces, landmarks))
        self.frames += 1
        self.faces += len(faces)
        self.with_faces += bool(faces)
        self.max_faces = max(self.max_faces, len(faces))

    def result(self, run: _ChunkRun, end_of_stream: bool, source_frames: int) -> ChunkResult:
        return ChunkResult(
            name=run.maker.name, fingerprint=run.maker.fingerprint, index=self.index, frames=self.frames,
            faces=self.faces, frames_with_faces=self.with_faces, max_faces=self.max_faces,
            seconds=round(time.monotonic() - self.started, 6), end_of_stream=end_of_stream,
            source_frames=source_frames, source=run.facts, detections="".join(self.lines).encode(),
            video=self.encoder.finish() if self.encoder is not None else b"",
        )


class _ChunkRun:
    """One run of chunks of one video: the three stages and their hand-over."""

    def __init__(
        self, maker: ChunkMaker, first: int, stop: int | None, on_chunk: Callable[[ChunkResult], None],
        should_stop: Callable[[], bool], on_frames: Callable[[int], None], on_decoded: Callable[[], None],
    ) -> None:
        assert maker.source is not None
        self.maker, self.source, self.settings = maker, maker.source, maker.settings
        self.first, self.stop = first, stop
        self.on_chunk, self.should_stop, self.on_frames = on_chunk, should_stop, on_frames
        self.on_decoded = on_decoded  # called in the decode thread when the source has ended
        info = self.source.info
        self.small = inference_size(info.width, info.height, self.settings.max_size)
        self.facts = SourceFacts(info.width, info.height, info.fps, info.declared_frames, *self.small)
        self.out_fps = info.fps / self.settings.frame_step if info.fps else 0.0
        self.abort = threading.Event()
        capacity = max(1, self.settings.queue_batches)
        #: whole batches of decoded frames (one hand-over per batch, not per frame: each wake-up of a waiting
        #: thread costs a context switch, and with every core decoding that cost ~7 % per frame-by-frame queue)
        self.frames_q: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        #: detected batches for the writer; with ``video: none`` they carry no frames, so a deep queue costs no
        #: memory and a chunk commit (an fsync, a store upload) in the writer does not hold up the decoders
        self.draws = self.settings.video_format != "none"
        self.results_q: queue.Queue[Any] = queue.Queue(maxsize=capacity if self.draws else 64 * capacity)
        #: finished chunks on their way to ``on_chunk`` (a commit through the store: on the Drive mount several
        #: round trips, hidden behind the next chunk's work); None: the writer hands each over itself, as with
        #: ``video: none``, where the writer's deep queue already lets the frames run on during a commit
        ahead = self.settings.commit_ahead if self.draws else 0
        self.chunks_q: queue.Queue[Any] | None = queue.Queue(maxsize=ahead) if ahead > 0 else None
        self.writer_error: BaseException | None = None
        self.commit_error: BaseException | None = None
        #: with ``video: none`` a batch's frames are done with once detected: decoded (and resized) into again
        depth = (capacity + 2) * self.settings.batch_size
        self.frame_pool = FramePool(depth) if not self.draws else None
        self.small_pool = FramePool(depth) if not self.draws else None

    def new_encoder(self) -> SegmentEncoder | None:
        s = self.settings
        if s.video_format == "none":
            return None
        return segment_encoder(s.video_format, self.facts.width, self.facts.height, self.out_fps, s.jpeg_quality)

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
        settings = self.settings
        start = chunk_start_frame(self.first, settings.frames_per_chunk, settings.frame_step)
        wanted = None if self.stop is None else (self.stop - self.first) * settings.frames_per_chunk
        read = 0
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        try:
            if wanted == 0:
                self._put(self.frames_q, _RunEnd())
                return
            smalls = self.small_pool
            for index, frame in self.source.frames(start, settings.frame_step, self.frame_pool):
                small = frame
                if (frame.shape[1], frame.shape[0]) != self.small:
                    small = cv2.resize(frame, self.small, dst=smalls.take() if smalls is not None else None,
                                       interpolation=cv2.INTER_AREA)
                pending.append((index, frame, small))
                read += 1
                if len(pending) == settings.batch_size:
                    if not self._put(self.frames_q, pending):
                        return
                    pending = []
                if read == wanted:  # stop before pulling the next frame: the source stays positioned
                    self._put(self.frames_q, _RunEnd())  # wanted is whole chunks: nothing is pending
                    return
            if pending and not self._put(self.frames_q, pending):
                return
            self.on_decoded()
            self._put(self.frames_q, _End(self.source.position))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            if not pending or self._put(self.frames_q, pending):
                self._put(self.frames_q, _Failure(exc))

    def _write(self) -> None:
        settings, fps = self.settings, self.source.info.fps
        chunk = _ChunkBuilder(self, self.first)
        try:
            while True:
                item = self._get(self.results_q)
                if isinstance(item, (_Failure, _Stop, _RunEnd)):
                    return  # a partial chunk is dropped: chunks are whole or absent
                if isinstance(item, _End):
                    self._hand_over(chunk.result(self, True, item.source_frames))
                    return
                for index, frame, faces in item:
                    chunk.add(index, frame, faces, fps, settings.landmarks)
                    if chunk.frames == settings.frames_per_chunk:
                        if not self._hand_over(chunk.result(self, False, 0)):
                            return
                        chunk = _ChunkBuilder(self, chunk.index + 1)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.writer_error = exc
            self.abort.set()

    def _hand_over(self, chunk: ChunkResult) -> bool:
        """A finished chunk to ``on_chunk``: through the commit thread, or here (False: aborted)."""
        if self.chunks_q is None:
            self.on_chunk(chunk)
            return True
        return self._put(self.chunks_q, chunk)

    def _commit(self) -> None:
        """Hands the finished chunks to ``on_chunk`` in order until the writer is done (``_Stop``); on an abort,
        the chunks already queued are still handed over (each is whole)."""
        assert self.chunks_q is not None
        try:
            while True:
                item = self._get(self.chunks_q)
                if isinstance(item, (_Stop, _Failure)):
                    return
                self.on_chunk(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self.commit_error = exc
            self.abort.set()

    # -- the caller's thread: batching and inference ---------------------------------------------------------
    def run(self) -> RunResult:
        decoder = threading.Thread(target=self._decode, name=f"decode:{self.maker.name}", daemon=True)
        writer = threading.Thread(target=self._write, name=f"write:{self.maker.name}", daemon=True)
        committer = None
        if self.chunks_q is not None:
            committer = threading.Thread(target=self._commit, name=f"commit:{self.maker.name}", daemon=True)
            committer.start()
        decoder.start()
        writer.start()
        done = 0
        failure: BaseException | None = None
        end: Any = _Stop()
        detector = self.maker.pipeline.detector
        try:
            while True:
                if self.should_stop():
                    break
                batch, end_item = self._next_batch()
                if batch:
                    with self.maker.pipeline.detect_lock:  # runs made at once share the detector (one GPU)
                        faces = detector.detect([small for _, _, small in batch])
                    results = []
                    for (index, frame, _), found in zip(batch, faces):
                        sx, sy = frame.shape[1] / self.small[0], frame.shape[0] / self.small[1]
                        scaled = [f.scaled(sx, sy) for f in found] if (sx, sy) != (1, 1) else found
                        results.append((index, frame if self.draws else None, scaled))
                    self._recycle(batch)
                    if not self._put(self.results_q, results):
                        break
                    done += len(batch)
                    self.on_frames(done)
                if isinstance(end_item, _Failure):
                    failure = end_item.error
                    break
                if isinstance(end_item, (_End, _RunEnd)):
                    end = end_item
                    break
        except BaseException:
            self.abort.set()
            raise
        finally:
            # the writer hands over its chunk on _End; on _Stop/_RunEnd the partial one (if any) is dropped
            if not self.abort.is_set():
                self._put(self.results_q, _Stop() if failure is not None else end)
            writer.join()
            if committer is not None and self.chunks_q is not None:
                if not self.abort.is_set():
                    self._put(self.chunks_q, _Stop())  # after the chunks the writer handed over
                committer.join()
            self.abort.set()  # releases the decoder if it waits on a full queue
            decoder.join()
        if self.commit_error is not None:
            raise self.commit_error
        if self.writer_error is not None:
            raise self.writer_error
        if failure is not None:
            raise failure  # an InputError becomes the run's "failed" result in ChunkMaker.run
        if isinstance(end, _Stop):
            self.maker.close()  # frames were read ahead: the next run opens the video again
            return RunResult(InputStatus.STOPPED, "stop requested")
        return RunResult(InputStatus.DONE)

    def _recycle(self, batch: list[tuple[int, np.ndarray, np.ndarray]]) -> None:
        """With ``video: none`` nothing refers to a detected batch's frames (the detector copied them into its
        input tensor; the results carry none): their buffers go back to the decoder."""
        if self.frame_pool is None or self.small_pool is None:
            return
        self.frame_pool.give(frame for _, frame, _ in batch)
        self.small_pool.give(small for _, frame, small in batch if small is not frame)

    def _next_batch(self) -> tuple[list[tuple[int, np.ndarray, np.ndarray]], Any]:
        batch: list[tuple[int, np.ndarray, np.ndarray]] = []
        while len(batch) < self.settings.batch_size:  # the decoder hands over whole batches (a short one last)
            item = self._get(self.frames_q)
            if isinstance(item, (_End, _RunEnd, _Failure)):
                return batch, item
            batch.extend(item)
        return batch, None


__all__ = ["ChunkMaker", "FacePipeline", "PipelineSettings", "RunResult", "inference_size", "input_fingerprint",
           "is_image"]
