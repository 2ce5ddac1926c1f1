"""Darknet weights files: the header, the iteration they hold, and a validator that refuses unusable files.

Layout (``save_weights_upto``): int32 major, minor, revision; ``seen`` (images trained on) as uint64 when
``major*10 + minor >= 2`` else uint32; then float32 parameters. pjreddie writes 0.2.0, AlexeyAB 0.2.5.
Darknet resumes at ``iteration = seen // ((batch / subdivisions) * subdivisions)``.

Both forks load a truncated file without complaint ("Done!") and train on garbage, and a diverged run saves
weights full of NaN: this validator is the only guard, so it checks the exact size the cfg implies, the
header, error pages saved under a weights name, and (optionally) NaN/inf parameters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from checkpoints.validators import Verdict, looks_like_error_page
from jobs.darknet.cfg import DarknetCfg
from jobs.darknet.network import FLOAT_BYTES, header_bytes, parameter_count
from orchestrator.core.errors import ConfigError
from orchestrator.core.logs import get_logger

_SNIFF = 4096
_MAX_VERSION_PART = 1000  # real files have 0.1.0 / 0.2.0 / 0.2.5; anything huge is not a weights header
_SCAN_CHUNK_FLOATS = 4 << 20

log = get_logger(__name__)


@dataclass(frozen=True)
class WeightsHeader:
    major: int
    minor: int
    revision: int
    seen: int
    size: int  # header bytes (16 or 20)

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}.{self.revision}"


def parse_header(head: bytes) -> WeightsHeader | None:
    """The header at the start of ``head``, or None if ``head`` is too short to hold one."""
    if len(head) < 12:
        return None
    major, minor, revision = struct.unpack_from("<iii", head, 0)
    size = header_bytes(major, minor)
    if len(head) < size:
        return None
    seen = struct.unpack_from("<Q" if size == 20 else "<I", head, 12)[0]
    return WeightsHeader(major=major, minor=minor, revision=revision, seen=seen, size=size)


def read_header(path: Path) -> WeightsHeader | None:
    with open(path, "rb") as fh:
        return parse_header(fh.read(20))


def iteration_from_seen(seen: int, cfg: DarknetCfg) -> int:
    """The iteration darknet resumes at for ``seen`` images with this cfg's batch/subdivisions."""
    return seen // max(cfg.images_per_iteration, 1)


def header_bytes_for(major: int, minor: int, revision: int, seen: int) -> bytes:
    """A header as darknet writes it (used by the stand-in darknet and by tests)."""
    fmt = "<iiiQ" if major * 10 + minor >= 2 else "<iiiI"
    return struct.pack(fmt, major, minor, revision, seen)


class DarknetWeightsValidator:
    """``validate(path) -> Verdict`` for weights of one cfg; the verdict's counter is the iteration."""

    def __init__(self, cfg: DarknetCfg, check_values: bool = True) -> None:
        self.cfg = cfg
        self.params = parameter_count(cfg)
        self.check_values = check_values

    def expected_size(self, major: int = 0, minor: int = 2) -> int:
        return header_bytes(major, minor) + FLOAT_BYTES * self.params

    def validate(self, path: Path) -> Verdict:
        name = Path(path).name
        try:
            size = Path(path).stat().st_size
            with open(path, "rb") as fh:
                head = fh.read(_SNIFF)
        except FileNotFoundError:
            return Verdict(False, f"{name} does not exist")
        except OSError as exc:
            return Verdict(False, f"{name} cannot be read: {exc.strerror or exc}")
        if size == 0:
            return Verdict(False, f"{name} is empty (0 bytes): the write was cut off before any data")
        page = looks_like_error_page(head)
        if page:
            return Verdict(False, f"{name} is {page}, not darknet weights")
        header = parse_header(head)
        if header is None:
            return Verdict(False, f"{name} is {size} bytes, too short to hold a darknet weights header")
        if not all(0 <= part < _MAX_VERSION_PART for part in (header.major, header.minor, header.revision)):
            return Verdict(False, f"{name} has no darknet weights header (version fields {header.version})")
        expected = header.size + FLOAT_BYTES * self.params
        iteration = iteration_from_seen(header.seen, self.cfg)  # reported even when invalid: it ranks the skip
        if size < expected:
            return Verdict(
                False,
                f"{name} is truncated: {size:,} bytes but {self.cfg.source} needs {expected:,} "
                "(cut off mid-write, e.g. by a disconnect)",
                counter=iteration,
            )
        if size > expected:
            return Verdict(
                False,
                f"{name} is {size:,} bytes but {self.cfg.source} needs exactly {expected:,}: it was written for "
                "a different cfg (other classes, filters or layers) or has extra data appended",
                counter=iteration,
            )
        if self.check_values:
            bad = count_non_finite(Path(path), header.size)
            if bad:
                return Verdict(
                    False,
                    f"{name} holds {bad:,} NaN/inf parameters: training diverged before it was saved "
                    "(lower learning_rate or raise burn_in, then resume from an earlier checkpoint)",
                    counter=iteration,
                )
        return Verdict(True, counter=iteration)


def count_non_finite(path: Path, offset: int) -> int:
    """Number of NaN/inf float32 values after ``offset`` (bounded memory); 0 if numpy is not installed."""
    try:
        import numpy as np
    except ImportError:  # the darknet extra installs numpy; without it the value scan is skipped
        return 0
    bad = 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        while chunk := fh.read(_SCAN_CHUNK_FLOATS * FLOAT_BYTES):
            usable = len(chunk) - len(chunk) % FLOAT_BYTES
            values = np.frombuffer(chunk[:usable], dtype="<f4")
            bad += int(values.size - np.count_nonzero(np.isfinite(values)))
    return bad


def check_pretrained(path: Path, cfg: DarknetCfg) -> None:
    """Refuse pretrained weights that cannot be darknet weights; partial ones (``*.conv.74``) are fine."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4096)
    page = looks_like_error_page(head)
    if page:
        raise ConfigError(f"pretrained weights {path} are {page}")
    header = read_header(path)
    if header is None or not (0 <= header.major < 1000 and 0 <= header.minor < 1000):
        raise ConfigError(f"pretrained weights {path} have no darknet header")
    payload = size - header.size
    if payload <= 0 or payload % FLOAT_BYTES:
        raise ConfigError(f"pretrained weights {path} ({size:,} bytes) are cut off: not a whole number of floats "
                          "after the header; download them again")
    full = parameter_count(cfg) * FLOAT_BYTES
    if payload > full:
        # e.g. COCO yolov3.weights (80-class heads) for a custom cfg: darknet loads the shared layers
        log.warning(
            "pretrained weights %s hold more parameters (%d) than the cfg (%d): the detection heads will not "
            "match; partial weights such as darknet53.conv.74 are the usual starting point", path,
            payload // FLOAT_BYTES, full // FLOAT_BYTES)
