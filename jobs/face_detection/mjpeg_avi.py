"""Motion-JPEG video without re-encoding: segment files of JPEG frames, and an AVI muxer that joins them.

The pipeline encodes each annotated frame to JPEG once. A chunk's frames go to a *segment* file (each frame
a 4-byte little-endian length then the JPEG bytes); the published video is an AVI (RIFF, ``MJPG`` video
stream, ``idx1`` index) built by copying the JPEG bytes of all segments in order, so publishing costs a file
copy, not a decode and re-encode. An AVI 1.0 file must stay below 2 GiB: :func:`write_avi_files` starts a
new part file (``<name>.annotated.part2.avi``, ...) when a part would exceed ``max_part_bytes``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from orchestrator.core.atomic import temp_path_for

AVI_PART_LIMIT = 1_900_000_000
_KEYFRAME = 0x10
_HAS_INDEX = 0x10


def pack_segment(jpegs: Iterable[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(j)) + j for j in jpegs)


def iter_segment(path: Path) -> Iterator[bytes]:
    """The JPEG frames of a segment file; raises ValueError on a torn file."""
    with open(path, "rb") as fh:
        while header := fh.read(4):
            if len(header) < 4:
                raise ValueError(f"segment {path} ends inside a frame header")
            (length,) = struct.unpack("<I", header)
            data = fh.read(length)
            if len(data) < length:
                raise ValueError(f"segment {path} ends inside a frame")
            yield data


def _chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _headers(width: int, height: int, fps: float, frames: int, max_frame: int) -> bytes:
    rate = Fraction(fps if fps > 0 else 25.0).limit_denominator(100_000)
    usec = round(1_000_000 / float(rate))
    avih = struct.pack(
        "<14I", usec, max_frame * int(float(rate) + 1), 0, _HAS_INDEX, frames, 0, 1, max_frame, width, height, 0, 0, 0, 0
    )
    strh = struct.pack(
        "<4s4sIHHIIIIIIiI4h", b"vids", b"MJPG", 0, 0, 0, 0, rate.denominator, rate.numerator, 0, frames, max_frame,
        -1, 0, 0, 0, width, height,
    )
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    strl = b"LIST" + struct.pack("<I", 4 + len(_chunk(b"strh", strh)) + len(_chunk(b"strf", strf))) + b"strl"
    strl += _chunk(b"strh", strh) + _chunk(b"strf", strf)
    hdrl_payload = b"hdrl" + _chunk(b"avih", avih) + strl
    return b"LIST" + struct.pack("<I", len(hdrl_payload)) + hdrl_payload


class AviWriter:
    """Writes one MJPG AVI file to an open binary file; call :meth:`close` to finish headers and index."""

    def __init__(self, fh: BinaryIO, width: int, height: int, fps: float) -> None:
        self.fh, self.width, self.height, self.fps = fh, width, height, fps
        self.index: list[tuple[int, int]] = []
        self.max_frame = 0
        fh.write(b"RIFF\0\0\0\0AVI ")
        self._header_at = fh.tell()
        fh.write(_headers(width, height, fps, 0, 0))
        self._movi_at = fh.tell()
        fh.write(b"LIST\0\0\0\0movi")
        self.bytes_written = fh.tell()

    def add(self, jpeg: bytes) -> None:
        offset = self.fh.tell() - (self._movi_at + 8)  # idx1 offsets count from the 'movi' fourcc
        self.fh.write(_chunk(b"00dc", jpeg))
        self.index.append((offset, len(jpeg)))
        self.max_frame = max(self.max_frame, len(jpeg))
        self.bytes_written = self.fh.tell()

    def close(self) -> None:
        fh = self.fh
        movi_end = fh.tell()
        fh.write(b"idx1" + struct.pack("<I", 16 * len(self.index)))
        fh.write(b"".join(struct.pack("<4sIII", b"00dc", _KEYFRAME, off, size) for off, size in self.index))
        end = fh.tell()
        fh.seek(4)
        fh.write(struct.pack("<I", end - 8))
        fh.seek(self._header_at)
        fh.write(_headers(self.width, self.height, self.fps, len(self.index), self.max_frame))
        fh.seek(self._movi_at + 4)
        fh.write(struct.pack("<I", movi_end - self._movi_at - 8))
        fh.seek(end)


def part_path(target: Path, part: int) -> Path:
    """``clip.annotated.avi`` for part 1, ``clip.annotated.part2.avi`` for part 2, ..."""
    return target if part == 1 else target.with_name(f"{target.stem}.part{part}{target.suffix}")


def write_avi_files(
    jpegs: Iterable[bytes], target: Path, width: int, height: int, fps: float, max_part_bytes: int = AVI_PART_LIMIT
) -> list[Path]:
    """Write ``jpegs`` as MJPG AVI ``target`` (and ``.partN`` files past ``max_part_bytes``), each published
    atomically (temp file, fsync, rename) once all parts are complete. Returns the published paths."""
    temps: list[tuple[Path, Path]] = []
    fh: BinaryIO | None = None
    writer: AviWriter | None = None

    def finish() -> None:
        assert fh is not None and writer is not None
        writer.close()
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()

    try:
        for jpeg in jpegs:
            if writer is None or (
                writer.index and writer.bytes_written + len(jpeg) + 16 * (len(writer.index) + 2) > max_part_bytes
            ):
                if writer is not None:
                    finish()
                final = part_path(target, len(temps) + 1)
                temps.append((temp_path_for(final), final))
                fh = open(temps[-1][0], "wb")  # noqa: SIM115 - closed by finish() or the except below
                writer = AviWriter(fh, width, height, fps)
            writer.add(jpeg)
        if writer is None:
            raise ValueError(f"no frames to write to {target}")
        finish()
    except BaseException:
        if fh is not None:
            fh.close()
        for temp, _ in temps:
            temp.unlink(missing_ok=True)
        raise
    for temp, final in temps:
        os.replace(temp, final)
    return [final for _, final in temps]


def iter_packed(data: bytes) -> Iterator[bytes]:
    """The JPEG frames of a packed segment held in memory; raises ValueError when it is torn."""
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise ValueError("segment ends inside a frame header")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise ValueError("segment ends inside a frame")
        yield data[offset : offset + length]
        offset += length
