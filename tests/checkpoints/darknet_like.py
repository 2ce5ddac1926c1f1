"""A minimal darknet-weights validator for the micro.cfg fixtures (the real one lives in jobs.darknet).

It speaks the real format: int32 major, minor, revision, then ``seen`` (int64 from version 0.2 on, else
int32); the file must be exactly the size every micro.cfg weights file has. Counter = seen // batch.
"""

from __future__ import annotations

import struct
from pathlib import Path

from checkpoints.validators import Verdict

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "darknet"
assert FIXTURES.is_dir(), f"shared fixtures missing: expected {FIXTURES} (../shared/fixtures beside the checkout)"
MICRO_SIZE = 248_196
MICRO_BATCH = 4


class MicroWeightsValidator:
    def validate(self, path: Path) -> Verdict:
        with open(path, "rb") as fh:
            head = fh.read(20)
        size = path.stat().st_size
        if len(head) < 12:
            return Verdict(False, f"{path.name} is too short for a darknet header ({size} bytes)")
        major, minor, _revision = struct.unpack("<3i", head[:12])
        wide = major * 10 + minor >= 2
        seen = struct.unpack("<q", head[12:20])[0] if wide else struct.unpack("<i", head[12:16])[0]
        if size != MICRO_SIZE:
            return Verdict(
                False, f"{path.name} is {size} bytes but micro.cfg weights are {MICRO_SIZE} (truncated or padded)"
            )
        return Verdict(True, counter=seen // MICRO_BATCH)
