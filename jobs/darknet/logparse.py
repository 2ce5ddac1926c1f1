"""Darknet's training output as plain values: iterations, saves, mAP, completion and recognised problems.

Pure: text in, events out. Both forks are understood:

* pjreddie (stdout): ``12: 1.976683, 65.587387 avg, 0.001000 rate, 0.065083 seconds, 48 images``
* AlexeyAB (stdout): ``\\033[H\\033[J12/250: loss=2.0 hours left=0.0\\a`` then
  `` 12: 1.976683, 65.587387 avg loss, 0.001000 rate, 0.065083 seconds, 48 images, 0.006676 hours left``
* both (stderr): ``Saving weights to /content/run/backup/micro_last.weights``

Loss may print as ``nan``/``-nan``. :class:`LogParser` accepts arbitrary chunks (a pty or pipe read), handles
``\\r``, ANSI escapes and partial lines, and reports each kind of problem once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePath

_NUM = r"[-+]?(?:nan|inf|\d+(?:\.\d*)?(?:e[-+]?\d+)?)"
_ITERATION = re.compile(
    rf"^\s*(?P<it>\d+): (?P<loss>{_NUM}), (?P<avg>{_NUM}) avg(?P<ab> loss)?, (?P<rate>{_NUM}) rate, "
    rf"(?P<sec>{_NUM}) seconds, (?P<images>\d+) images(?:, (?P<left>{_NUM}) hours left)?",
    re.IGNORECASE,
)
_STATUS = re.compile(
    rf"^(?P<it>\d+)/(?P<max>\d+): loss=(?P<loss>{_NUM})(?: map=(?P<map>{_NUM}) best=(?P<best>{_NUM}))?"
    rf" hours left=(?P<left>{_NUM})",
    re.IGNORECASE,
)
_SAVING = re.compile(r"^Saving weights to (?P<path>.+?)\s*$")
_LOADING = re.compile(r"^Loading weights from (?P<path>.+?)\.\.\.")
_MAP = re.compile(rf"mean_average_precision \(mAP@(?P<iou>{_NUM})\) = (?P<map>{_NUM})")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Iteration:
    iteration: int
    loss: float
    avg_loss: float
    rate: float
    seconds: float
    images: int
    hours_left: float | None  # AlexeyAB only
    fork: str  # "pjreddie" | "alexeyab"


@dataclass(frozen=True)
class Status:
    """AlexeyAB's one-line status, the only place darknet prints ``max_batches`` during training."""

    iteration: int
    max_batches: int
    loss: float
    hours_left: float
    map: float | None = None


@dataclass(frozen=True)
class Saved:
    path: str

    @property
    def kind(self) -> str:
        """``backup`` / ``last`` / ``final`` / ``best`` / ``iteration`` from the file name darknet chose."""
        stem = PurePath(self.path).name
        if stem.endswith(".backup"):
            return "backup"
        for kind in ("last", "final", "best", "ema"):
            if stem.endswith(f"_{kind}.weights"):
                return kind
        return "iteration"

    @property
    def iteration(self) -> int | None:
        match = re.search(r"_(\d+)\.weights$", self.path)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Loaded:
    path: str


@dataclass(frozen=True)
class MeanAP:
    iou: float
    map: float


@dataclass(frozen=True)
class Problem:
    """Something darknet printed that needs the user: ``kind`` is a stable key, ``fix`` the usual remedy."""

    kind: str
    line: str
    message: str
    fix: str
    iteration: int | None = None  # where it happened, when the log says (a NaN loss)


Event = Iteration | Status | Saved | Loaded | MeanAP | Problem

_PROBLEMS: list[tuple[str, re.Pattern[str], str, str]] = [
    (
        "out_of_memory",
        re.compile(r"out of memory|CUDNN_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation", re.IGNORECASE),
        "the GPU ran out of memory",
        "raise subdivisions= in [net] (16 -> 32 -> 64), or lower width/height (multiples of 32)",
    ),
    (
        "cuda_error",
        re.compile(r"CUDA Error|CUDA status Error|cuDNN (?:status )?Error|CUDNN_STATUS_", re.IGNORECASE),
        "darknet hit a CUDA/cuDNN error",
        (
            "check that the binary was built for this GPU's compute capability and CUDA/cuDNN version "
            "(the build cache key includes both; a rebuild fixes a stale binary)"
        ),
    ),
    (
        "file_not_found",
        re.compile(r"^Couldn't open file: (?P<path>.*)$"),
        "darknet could not open a file",
        (
            "check the paths in obj.data, train.txt and the cfg, and that the backup folder exists "
            "(darknet does not create it)"
        ),
    ),
    (
        "batch_too_small",
        re.compile(r"incorrect value batch=1 for Training", re.IGNORECASE),
        "AlexeyAB darknet refuses batch=1 for training",
        "set batch=64 and subdivisions=16 (or higher) in [net]",
    ),
    (
        "bad_annotation",
        re.compile(r"Wrong annotation|Wrong label", re.IGNORECASE),
        "a label file has a class id or box outside the cfg's range",
        "make classes= in every [yolo]/[region] layer match obj.names and keep boxes in [0, 1]",
    ),
]

NAN_FIX = (
    "training diverged: lower learning_rate (e.g. by 10x) or raise burn_in (train.learning_rate / train.burn_in "
    "in the job file, or [net] of your cfg), check labels for empty or out-of-range boxes"
)


def clean_line(raw: str) -> str:
    """Drop ANSI escapes, BEL and carriage-return overwrites, keeping what a terminal would show last."""
    text = _ANSI.sub("", raw).replace("\a", "").rstrip("\r\n")
    if "\r" in text:
        shown = [part for part in text.split("\r") if part.strip()]
        text = shown[-1] if shown else ""
    return text.rstrip("\n")


def _f(text: str | None) -> float:
    return float(text) if text is not None else math.nan


def parse_line(raw: str) -> list[Event]:
    """Events in one line of darknet output (a status line and its iteration line may share a raw line)."""
    line = clean_line(raw)
    stripped = line.strip()
    if not stripped:
        return []
    if match := _ITERATION.match(line):
        return [
            Iteration(
                iteration=int(match["it"]),
                loss=_f(match["loss"]),
                avg_loss=_f(match["avg"]),
                rate=_f(match["rate"]),
                seconds=_f(match["sec"]),
                images=int(match["images"]),
                hours_left=_f(match["left"]) if match["left"] is not None else None,
                fork="alexeyab" if match["ab"] else "pjreddie",
            )
        ]
    if match := _STATUS.match(stripped):
        return [
            Status(
                iteration=int(match["it"]),
                max_batches=int(match["max"]),
                loss=_f(match["loss"]),
                hours_left=_f(match["left"]),
                map=_f(match["map"]) if match["map"] is not None else None,
            )
        ]
    if match := _SAVING.match(stripped):
        return [Saved(match["path"])]
    if match := _LOADING.match(stripped):
        return [Loaded(match["path"])]
    if match := _MAP.search(stripped):
        return [MeanAP(iou=_f(match["iou"]), map=_f(match["map"]))]
    for kind, pattern, message, fix in _PROBLEMS:
        if pattern.search(stripped):
            return [Problem(kind=kind, line=stripped, message=f"{message}: {stripped}", fix=fix)]
    return []


class LogParser:
    """Feed it chunks of darknet output in order; it returns complete events and tracks the run's facts."""

    def __init__(self) -> None:
        self._partial = ""
        self._reported: set[str] = set()
        self.last_iteration: Iteration | None = None
        self.max_batches: int | None = None
        self.saves: list[Saved] = []
        self.finished = False  # a ``*_final.weights`` save was printed

    def feed(self, chunk: str) -> list[Event]:
        text = self._partial + chunk
        lines = text.split("\n")
        self._partial = lines.pop()
        events: list[Event] = []
        for line in lines:
            events.extend(self._observe(parse_line(line)))
        return events

    def close(self) -> list[Event]:
        """Parse whatever is left after the stream ended (a last line without a newline)."""
        rest, self._partial = self._partial, ""
        return self._observe(parse_line(rest)) if rest else []

    def _observe(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if isinstance(event, Iteration):
                self.last_iteration = event
                if math.isnan(event.avg_loss) and "nan_loss" not in self._reported:
                    out.append(event)
                    event = Problem(
                        kind="nan_loss",
                        line=f"{event.iteration}: avg loss {event.avg_loss}",
                        message=f"avg loss is NaN at iteration {event.iteration}",
                        fix=NAN_FIX,
                        iteration=event.iteration,
                    )
            elif isinstance(event, Status):
                self.max_batches = event.max_batches
            elif isinstance(event, Saved):
                self.saves.append(event)
                self.finished = self.finished or event.kind == "final"
            if isinstance(event, Problem):
                if event.kind in self._reported:
                    continue
                self._reported.add(event.kind)
            out.append(event)
        return out


def parse_log(text: str) -> list[Event]:
    """All events of a complete log."""
    parser = LogParser()
    return parser.feed(text) + parser.close()
