"""The annotated video: one segment per chunk, joined without re-encoding when the input is published.

Two formats (``video:`` in the job file):

* ``mp4`` (default): H.264 in MP4, which browsers and Colab's ``IPython.display.Video`` play. Each chunk's
  frames are encoded by a fresh libx264 encoder into a raw Annex-B segment, so every segment starts on an IDR
  keyframe and carries its own SPS/PPS; publishing concatenates the segments and remuxes them into MP4
  (``-c copy``, ``+faststart``), which costs a file copy, not an encode. The encoder is the ffmpeg binary
  that ``imageio-ffmpeg`` ships in its wheel: a static build with libx264, the same on Colab, Kaggle and a
  laptop, run as a subprocess (list arguments, no shell). PyAV (whose wheels also carry libx264) would encode
  in-process; the subprocess is chosen so an encoder crash cannot take the job down, encoding runs beside the
  torch threads without the GIL, and no second set of FFmpeg libraries is loaded next to OpenCV's own.
  The thread count of x264 is fixed: x264 is deterministic for a given thread count, so a chunk encoded by
  any worker on any machine has the same bytes.
* ``avi``: Motion-JPEG AVI (``mjpeg_avi.py``): every frame a JPEG, larger files, no extra dependency.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np

from jobs.face_detection.annotate import encode_jpeg
from jobs.face_detection.mjpeg_avi import iter_packed, pack_segment, write_avi_files
from orchestrator.core.atomic import atomic_write_bytes, temp_path_for
from orchestrator.core.errors import ConfigError
from orchestrator.core.install import install_hint

VIDEO_FORMATS = ("mp4", "avi")
X264_THREADS = 2  # fixed: the bytes of an encoded chunk must not depend on the machine
X264_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-bf", "0", "-pix_fmt", "yuv420p",
             "-threads", str(X264_THREADS))
FALLBACK_FPS = 25.0  # for inputs without a frame rate (the AVI writer does the same)
MP4_INSTALL_HINT = f"{install_hint('face')} (or use video: avi)"


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled with imageio-ffmpeg (``IMAGEIO_FFMPEG_EXE`` overrides it)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise ConfigError(f"video: mp4 needs the imageio-ffmpeg package: {MP4_INSTALL_HINT}") from exc
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _rate(fps: float) -> str:
    return str(Fraction(fps or FALLBACK_FPS).limit_denominator(1001))


def video_file_name(name: str, video_format: str, image: bool = False) -> str:
    if image:
        return f"{name}.annotated.jpg"
    return f"{name}.annotated.{video_format}"


class SegmentEncoder(Protocol):
    def add(self, frame: np.ndarray) -> None: ...

    def finish(self) -> bytes:
        """The segment's bytes (empty when no frame was added); the encoder cannot be used afterwards."""


class MjpegSegmentEncoder:
    """Each frame a JPEG, packed length-prefixed (see mjpeg_avi.py)."""

    def __init__(self, quality: int) -> None:
        self.quality = quality
        self.jpegs: list[bytes] = []

    def add(self, frame: np.ndarray) -> None:
        self.jpegs.append(encode_jpeg(frame, self.quality))

    def finish(self) -> bytes:
        return pack_segment(self.jpegs)


class H264SegmentEncoder:
    """Raw BGR frames piped to a libx264 encoder; the segment is Annex-B H.264 starting on an IDR frame."""

    def __init__(self, width: int, height: int, fps: float) -> None:
        self.size = (width, height)
        self.fps = fps
        self.process: subprocess.Popen[bytes] | None = None
        self.out_path: Path | None = None

    def _start(self) -> subprocess.Popen[bytes]:
        fd, name = tempfile.mkstemp(prefix="face-segment-", suffix=".h264")
        os.close(fd)
        self.out_path = Path(name)
        width, height = self.size
        args = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", _rate(self.fps), "-i", "pipe:0",
            "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", *X264_ARGS, "-f", "h264", str(self.out_path),
        ]
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def add(self, frame: np.ndarray) -> None:
        if self.process is None:
            self.process = self._start()
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self.finish()  # raises with ffmpeg's message

    def finish(self) -> bytes:
        if self.process is None:
            return b""
        process, self.process = self.process, None
        assert self.out_path is not None
        try:
            _, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"ffmpeg could not encode a video segment: {err.decode(errors='replace').strip()}")
            return self.out_path.read_bytes()
        finally:
            self.out_path.unlink(missing_ok=True)

    def __del__(self) -> None:  # an abandoned chunk (stop request): do not leave ffmpeg running
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self.out_path is not None:
                self.out_path.unlink(missing_ok=True)


def segment_encoder(video_format: str, width: int, height: int, fps: float, jpeg_quality: int) -> SegmentEncoder:
    if video_format == "mp4":
        return H264SegmentEncoder(width, height, fps)
    return MjpegSegmentEncoder(jpeg_quality)


def join_segments(
    video_format: str, segments: Iterable[bytes], target: Path, width: int, height: int, fps: float
) -> list[Path]:
    """Publish the segments (in order) as ``target`` atomically; returns the files written (AVI may split)."""
    if video_format == "avi":
        frames = (jpeg for segment in segments for jpeg in iter_packed(segment))
        return write_avi_files(frames, target, width, height, fps)
    stream = temp_path_for(target.with_suffix(".h264"))
    with open(stream, "wb") as fh:
        fh.writelines(segments)
    temp = temp_path_for(target)
    try:
        args = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "h264",
            "-framerate", _rate(fps), "-i", str(stream), "-c", "copy", "-movflags", "+faststart", "-f", "mp4",
            str(temp),
        ]
        done = subprocess.run(args, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ffmpeg could not write {target.name}: {done.stderr.decode(errors='replace').strip()}")
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, target)
    finally:
        stream.unlink(missing_ok=True)
        temp.unlink(missing_ok=True)
    return [target]


def write_image(jpeg: bytes, target: Path) -> list[Path]:
    atomic_write_bytes(target, jpeg)
    return [target]
