"""The durable, resumable state of one input being processed, and publishing its final outputs.

Layout in the output folder (durable, e.g. on Drive)::

    <name>.annotated.avi          final annotated video (MJPG AVI; images: <name>.annotated.jpg)
    <name>.detections.jsonl       final detections (the data contract, see detections.py)
    <name>.summary.json           written last: its presence with a matching fingerprint means "done"
    <name>.failed.json            the input failed (reason inside); not retried while the fingerprint matches
    .partial/<name>/progress.json the commit point: chunks committed, frames done, next source frame
    .partial/<name>/chunk-000003.jsonl / .mjpg   detections and JPEG frames of committed chunk 3

A chunk is committed by writing its two files atomically, then ``progress.json`` atomically; files of a chunk
not yet recorded in ``progress.json`` are ignored and overwritten on resume. So after ``kill -9`` at any point
the input continues from its last committed chunk, and the final files appear only when complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jobs.face_detection.mjpeg_avi import iter_segment, pack_segment, write_avi_files
from orchestrator.core.atomic import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text

PARTIAL_DIR = ".partial"


@dataclass
class Progress:
    """What is committed for one input (all counters are of committed chunks only)."""

    fingerprint: str
    chunks: int = 0
    frames_done: int = 0  # processed frames committed
    next_frame: int = 0  # source frame index to continue from
    faces: int = 0
    frames_with_faces: int = 0
    max_faces: int = 0
    seconds: float = 0.0  # processing wall time summed over sessions
    complete: bool = False  # every chunk committed: only publishing is left
    source_frames: int = 0  # frames the source turned out to have (set when complete)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutputFiles:
    """Every path of one input's outputs."""

    out_dir: Path
    name: str
    image: bool = False

    @property
    def video(self) -> Path:
        return self.out_dir / (f"{self.name}.annotated.jpg" if self.image else f"{self.name}.annotated.avi")

    @property
    def detections(self) -> Path:
        return self.out_dir / f"{self.name}.detections.jsonl"

    @property
    def summary(self) -> Path:
        return self.out_dir / f"{self.name}.summary.json"

    @property
    def failed(self) -> Path:
        return self.out_dir / f"{self.name}.failed.json"

    @property
    def partial(self) -> Path:
        return self.out_dir / PARTIAL_DIR / self.name

    @property
    def progress(self) -> Path:
        return self.partial / "progress.json"

    def chunk_detections(self, index: int) -> Path:
        return self.partial / f"chunk-{index:06d}.jsonl"

    def chunk_segment(self, index: int) -> Path:
        return self.partial / f"chunk-{index:06d}.mjpg"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def finished_state(files: OutputFiles, fingerprint: str) -> str | None:
    """``"done"`` / ``"failed"`` when this input was finished with the same fingerprint, else None."""
    for state, path in (("done", files.summary), ("failed", files.failed)):
        record = read_json(path)
        if record is not None and record.get("fingerprint") == fingerprint:
            return state
    return None


def load_progress(files: OutputFiles, fingerprint: str) -> Progress:
    """The committed progress, or a fresh one (wiping stale chunks) when absent or made with other settings."""
    record = read_json(files.progress)
    if record is not None and record.get("fingerprint") == fingerprint:
        try:
            return Progress(**record)
        except TypeError:
            pass
    if files.partial.exists():
        shutil.rmtree(files.partial)
    return Progress(fingerprint=fingerprint)


def commit_chunk(files: OutputFiles, progress: Progress, lines: list[str], jpegs: list[bytes]) -> None:
    """Durably add one chunk (detections lines + JPEG frames) and advance ``progress`` (already updated by
    the caller except for the chunk count) to include it."""
    index = progress.chunks
    atomic_write_text(files.chunk_detections(index), "".join(lines))
    atomic_write_bytes(files.chunk_segment(index), pack_segment(jpegs))
    progress.chunks = index + 1
    save_progress(files, progress)


def save_progress(files: OutputFiles, progress: Progress) -> None:
    atomic_write_json(files.progress, asdict(progress))


def iter_committed_frames(files: OutputFiles, progress: Progress) -> Iterator[bytes]:
    for index in range(progress.chunks):
        yield from iter_segment(files.chunk_segment(index))


def publish(files: OutputFiles, progress: Progress, size: tuple[int, int], fps: float, summary: dict[str, Any]) -> None:
    """Join the committed chunks into the final outputs; the summary (the "done" marker) is written last."""
    if files.image:
        jpegs = list(iter_committed_frames(files, progress))
        atomic_write_bytes(files.video, jpegs[0])
    elif progress.frames_done:
        summary["video_files"] = [
            p.name for p in write_avi_files(iter_committed_frames(files, progress), files.video, size[0], size[1], fps)
        ]
    _join_atomically([files.chunk_detections(i) for i in range(progress.chunks)], files.detections)
    files.failed.unlink(missing_ok=True)
    atomic_write_json(files.summary, summary)
    discard_partial(files)


def discard_partial(files: OutputFiles) -> None:
    shutil.rmtree(files.partial, ignore_errors=True)
    try:
        files.partial.parent.rmdir()  # the shared .partial folder, once no input is in progress
    except OSError:
        pass


def _join_atomically(parts: list[Path], target: Path) -> None:
    """Concatenate ``parts`` into ``target`` (streamed: flat memory on long videos), atomically."""
    with atomic_open(target) as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)


def record_failure(files: OutputFiles, fingerprint: str, reason: str) -> None:
    atomic_write_json(files.failed, {"fingerprint": fingerprint, "reason": reason, "input": files.name})
    discard_partial(files)
