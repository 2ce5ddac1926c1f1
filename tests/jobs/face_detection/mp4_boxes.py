"""A small ISO-BMFF (MP4) reader for tests: the video track's codec and sample count, from the boxes
themselves (independent of OpenCV and ffmpeg)."""

from __future__ import annotations

import struct
from pathlib import Path

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int, end: int):
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, offset + 8)[0]
            header = 16
        elif size == 0:
            size = end - offset
        yield kind, offset + header, offset + size
        offset += size


def video_tracks(path: Path) -> list[dict[str, object]]:
    """[{"codec": "avc1", "samples": N, "faststart": bool}, ...] for every track with a visual sample entry."""
    data = path.read_bytes()
    top = [kind for kind, _, _ in _boxes(data, 0, len(data))]
    tracks: list[dict[str, object]] = []

    def walk(start: int, end: int, found: dict[str, object]) -> None:
        for kind, body, stop in _boxes(data, start, end):
            if kind == b"trak":
                track: dict[str, object] = {}
                walk(body, stop, track)
                if "codec" in track:
                    tracks.append(track)
            elif kind in CONTAINERS:
                walk(body, stop, found)
            elif kind == b"stsd":
                (count,) = struct.unpack_from(">I", data, body + 4)
                if count:
                    codec = data[body + 12 : body + 16].decode("ascii", "replace")
                    if codec in ("avc1", "avc3", "mp4v", "hvc1", "hev1"):
                        found["codec"] = codec
            elif kind == b"stsz":
                found["samples"] = struct.unpack_from(">I", data, body + 8)[0]

    walk(0, len(data), {})
    faststart = b"moov" in top and b"mdat" in top and top.index(b"moov") < top.index(b"mdat")
    for track in tracks:
        track["faststart"] = faststart
    return tracks
