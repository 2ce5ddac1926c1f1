"""Chunks: the unit of work and of commit of a face detection job (pure values, no I/O).

An input's processed frames are cut into chunks of ``frames_per_chunk`` frames: chunk ``k`` holds processed
frames ``k*F .. (k+1)*F - 1``, i.e. it starts at source frame ``k * F * frame_step``. A chunk's content depends
only on the input, the settings and ``k``, so chunks can be made in any order, by any process (the local
executor, a Ray actor), and the joined outputs are byte-identical to one uninterrupted run.

A :class:`ChunkResult` carries what the chunk adds (detections lines, the annotated video segment) and its
counters; it serialises to one self-describing object (a JSON header line, then the two payloads), which the
ledger commits through the job's store. The input is finished once the chunk in which the source ended and
every chunk before it are committed (:class:`InputChunks`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from enum import Enum
from itertools import pairwise
from typing import Any

CHUNK_FORMAT = "face-chunk/1"
_NAME = re.compile(r"^(?P<name>.+)\.(?P<fp>[0-9a-f]{8})\.(?P<index>\d{5,})\.chunk$")


class InputStatus(str, Enum):
    """How an input, or a run of its chunks, ended (``str`` values: journaled as ``input_<status>``)."""

    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"  # a stop was requested (deadline, signal); the chunk in progress is dropped


@dataclass(frozen=True)
class SourceFacts:
    """What a worker learnt about the input (the same for every chunk of it)."""

    width: int
    height: int
    fps: float
    declared_frames: int
    inference_width: int
    inference_height: int


@dataclass(frozen=True)
class ChunkResult:
    """One committed (or to-be-committed) chunk of one input."""

    name: str  # the input's output name
    fingerprint: str  # input + model + settings; a chunk of another fingerprint is never mixed in
    index: int
    frames: int  # processed frames in this chunk (< frames_per_chunk only in the last one)
    faces: int
    frames_with_faces: int
    max_faces: int
    seconds: float  # wall time the worker spent on it
    end_of_stream: bool  # the source ended inside (or right at the start of) this chunk
    source_frames: int  # frames the source turned out to have (meaningful when end_of_stream)
    source: SourceFacts
    detections: bytes  # JSON lines (detections.py)
    video: bytes  # the annotated video segment (see video_out.py)

    def to_bytes(self) -> bytes:
        header = {k: v for k, v in asdict(self).items() if k not in ("detections", "video")}
        header.update(format=CHUNK_FORMAT, detections_bytes=len(self.detections), video_bytes=len(self.video))
        return json.dumps(header, sort_keys=True).encode() + b"\n" + self.detections + self.video

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkResult:
        """Parse a chunk object; ValueError when it is torn or not a chunk."""
        end = data.find(b"\n")
        try:
            header: dict[str, Any] = json.loads(data[:end])
        except ValueError as exc:
            raise ValueError(f"not a face chunk ({exc})") from None
        if end < 0 or header.pop("format", None) != CHUNK_FORMAT:
            raise ValueError("not a face chunk (no header)")
        n_det, n_video = header.pop("detections_bytes"), header.pop("video_bytes")
        body = data[end + 1 :]
        if len(body) != n_det + n_video:
            raise ValueError(f"face chunk is torn: {len(body)} payload bytes, header says {n_det + n_video}")
        header["source"] = SourceFacts(**header["source"])
        return cls(**header, detections=body[:n_det], video=body[n_det:])

    @property
    def record_name(self) -> str:
        return chunk_record_name(self.name, self.fingerprint, self.index)


def chunk_record_name(name: str, fingerprint: str, index: int) -> str:
    """The store record name of a chunk: ``<input>.<fingerprint[:8]>.<index:05d>.chunk``."""
    return f"{name}.{fingerprint[:8]}.{index:05d}.chunk"


def parse_chunk_record_name(record_name: str) -> tuple[str, str, int] | None:
    """(input name, fingerprint prefix, index) of a chunk record name, or None for other records."""
    match = _NAME.match(record_name)
    return (match["name"], match["fp"], int(match["index"])) if match else None


def chunk_start_frame(index: int, frames_per_chunk: int, frame_step: int) -> int:
    """The source frame index chunk ``index`` starts at."""
    return index * frames_per_chunk * frame_step


@dataclass(frozen=True)
class InputChunks:
    """Which chunks of one input are committed, and what is left (a pure view of the ledger)."""

    committed: frozenset[int]
    end: int | None  # the smallest committed chunk index in which the source ended, if any

    @property
    def complete(self) -> bool:
        return self.end is not None and all(i in self.committed for i in range(self.end + 1))

    def needed(self) -> list[int]:
        """Missing chunk indices before the known end (or before the highest committed one when the end is
        not known yet); the open-ended tail after them is :meth:`tail_start`."""
        limit = self.end + 1 if self.end is not None else (max(self.committed, default=-1) + 1)
        return [i for i in range(limit) if i not in self.committed]

    @property
    def tail_start(self) -> int | None:
        """First chunk index after every committed one while the end is unknown (None once it is known)."""
        return None if self.end is not None else max(self.committed, default=-1) + 1


def missing_spans(chunks: InputChunks, expected_chunks: int) -> list[tuple[int, int | None]]:
    """Runs ``(first, stop)`` of chunks still to make, in order; ``stop`` None means "until the source ends".

    ``expected_chunks`` is the count the container's frame count predicts: the last run is open-ended, so a
    video longer than declared is still read to its end, and one shorter than declared ends early.
    """
    wanted = set(chunks.needed())
    tail = chunks.tail_start
    if tail is not None:
        wanted |= set(range(tail, max(tail, expected_chunks)))
    spans: list[tuple[int, int | None]] = []
    for index in sorted(wanted):
        if spans and spans[-1][1] == index:
            spans[-1] = (spans[-1][0], index + 1)
        else:
            spans.append((index, index + 1))
    if tail is not None:
        last_needed_stop = max(tail, expected_chunks)
        if spans and spans[-1][1] == last_needed_stop:
            spans[-1] = (spans[-1][0], None)
        else:
            spans.append((last_needed_stop, None))
    return spans


def split_span(first: int, stop: int, parts: int) -> list[tuple[int, int]]:
    """``[first, stop)`` cut into at most ``parts`` contiguous runs of near-equal length."""
    total = stop - first
    parts = max(1, min(parts, total))
    bounds = [first + total * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in pairwise(bounds) if b > a]
