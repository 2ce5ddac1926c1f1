"""Reading input videos and images as numbered BGR frames (OpenCV, or NVDEC through torchcodec on a GPU), with
failures as plain exceptions.

A video is read sequentially; frames before the resume point and between processed frames (``frame_step``)
are skipped with ``grab()`` (no colour conversion), which stays exact where container seeking is not.
An image is a one-frame source. ``InputError`` says why an input cannot be processed; the pipeline records
it as the input's failure reason and the batch goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


class InputError(Exception):
    """An input video/image cannot be processed (unreadable, truncated, no frames)."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class SourceInfo:
    width: int
    height: int
    fps: float  # 0.0 for images and videos without a frame rate
    declared_frames: int  # from the container (approximate for some formats), 1 for an image


class FramePool:
    """Frame buffers handed back once their frames are done with, to be decoded (or resized) into again.

    A fresh array per frame (~0.9 MB at 640x480) is a fresh mapping from the kernel while frames stay alive in
    the pipeline's queues: measured here, 10x the page faults of a bare decode loop and a few per cent of the
    cores. At most ``limit`` buffers are kept; ``take`` and ``give`` may be called from different threads.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free: deque[np.ndarray] = deque()

    def take(self) -> np.ndarray | None:
        """A free buffer, or None (OpenCV then allocates one; a buffer of another size is replaced likewise)."""
        try:
            return self._free.pop()
        except IndexError:
            return None

    def give(self, buffers: Iterable[np.ndarray]) -> None:
        """Buffers nothing refers to any more (the caller's promise: they are overwritten)."""
        for buffer in buffers:
            if len(self._free) >= self.limit:
                return
            self._free.append(buffer)


def read_image(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), dtype=np.uint8)  # np + imdecode: works for unicode paths too
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputError(f"cannot decode image {path.name} (unreadable or not an image)")
    return image


class VideoSource:
    """Sequential frame reader over one video file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file() or path.stat().st_size == 0:
            raise InputError(f"{path.name} is empty or missing")
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise InputError(f"cannot open video {path.name} (unreadable, truncated or unsupported format)")
        width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        declared = int(max(0, self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        if width <= 0 or height <= 0:
            self.close()
            raise InputError(f"video {path.name} reports no frame size (no video stream?)")
        self.info = SourceInfo(width, height, fps if 0 < fps < 1000 else 0.0, declared)
        self.position = 0  # index of the next frame in the file
        self.last_frame_read = -1

    def frames(self, start: int, step: int, pool: FramePool | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for frames ``start, start+step, ...`` (``start`` a multiple of ``step``) to the end;
        with ``pool``, frames are decoded into its free buffers."""
        while self.position < start:
            if not self.capture.grab():
                return
            self.position += 1
        while True:
            if self.position % step:
                ok = self.capture.grab()
                frame = None
            else:
                ok, frame = self.capture.read(pool.take() if pool is not None else None)
            if not ok:
                return
            index = self.position
            self.position += 1
            if frame is not None:
                self.last_frame_read = index
                yield index, frame

    def close(self) -> None:
        self.capture.release()


def truncation_reason(info: SourceInfo, frames_seen: int) -> str | None:
    """Why a video that ended after ``frames_seen`` frames counts as truncated, or None.

    Containers' frame counts can be off by a frame or two (or 1 %), so only a clear shortfall counts.
    """
    if frames_seen == 0:
        return "no frames could be decoded (zero-frame or corrupt video)"
    declared = info.declared_frames
    if declared > 0 and frames_seen < declared - max(2, declared // 100):
        return f"truncated: decoded {frames_seen} of {declared} frames the container declares"
    return None


class TorchcodecSource:
    """``VideoSource``'s interface over torchcodec's CUDA decoder (NVDEC): frames decoded on the GPU in batches,
    handed on as BGR uint8 arrays like OpenCV's. Exact seek mode, so a resume starts at exactly ``start``."""

    BATCH = 32

    def __init__(self, path: Path, device: str = "cuda") -> None:
        self.path = path
        if not path.is_file() or path.stat().st_size == 0:
            raise InputError(f"{path.name} is empty or missing")
        try:
            from torchcodec.decoders import VideoDecoder

            self.decoder = VideoDecoder(str(path), device=device, dimension_order="NHWC", seek_mode="exact")
            meta = self.decoder.metadata
            width, height = int(meta.width or 0), int(meta.height or 0)
            fps = float(meta.average_fps or 0.0)
            self.count = int(meta.num_frames or len(self.decoder))
        except (RuntimeError, ValueError, OSError) as exc:
            raise InputError(f"cannot open video {path.name} on the GPU decoder ({exc})") from exc
        if width <= 0 or height <= 0:
            raise InputError(f"video {path.name} reports no frame size (no video stream?)")
        self.info = SourceInfo(width, height, fps if 0 < fps < 1000 else 0.0, self.count)
        self.position = 0
        self.last_frame_read = -1

    def frames(self, start: int, step: int, pool: FramePool | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """As ``VideoSource.frames``; ``pool`` is not used (frames are views of each decoded batch)."""
        index = start
        while index < self.count:
            stop = min(self.count, index + self.BATCH * step)
            try:
                batch = self.decoder.get_frames_in_range(index, stop, step).data
            except (RuntimeError, IndexError):
                self.position = index
                return  # a truncated stream ends here, as OpenCV's read() does
            bgr = batch.flip(-1).cpu().numpy()
            for offset, frame in enumerate(bgr):
                self.last_frame_read = index + offset * step
                self.position = self.last_frame_read + 1
                yield self.last_frame_read, np.ascontiguousarray(frame)
            index = stop if (stop - index) % step == 0 else index + len(bgr) * step
        self.position = self.count

    def close(self) -> None:
        self.decoder = None


def open_video(path: Path, decoder: str = "opencv-cpu") -> VideoSource | TorchcodecSource:
    """The source for ``decoder`` (``hw_video.choose_decoder``): NVDEC through torchcodec, or OpenCV on the CPU."""
    if decoder == "torchcodec-cuda":
        return TorchcodecSource(path)
    return VideoSource(path)
