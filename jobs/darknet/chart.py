"""Loss history across sessions and the loss chart (PNG) stitched from it.

Each session appends its parsed iterations to ``session-NNN.csv`` (``iteration,loss,avg_loss``) in the job's
durable folder; the chart reads every session's file, so a chart drawn after the fifth disconnect still shows
the whole run, with the session boundaries marked and numbered as ``status`` numbers sessions. matplotlib (Agg) is imported only when drawing.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.atomic import atomic_write_bytes


@dataclass
class SessionLoss:
    session: str
    iterations: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    avg_loss: list[float] = field(default_factory=list)


class LossHistory:
    """Appends one session's iterations to its CSV (line-buffered: a kill loses at most the last line)."""

    def __init__(self, folder: Path, session: str) -> None:
        """``session`` names the file: ``"003-<session id>"`` (the session's number, as ``status`` shows it)."""
        self.folder = folder
        self.path = folder / f"session-{session}.csv"
        folder.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._fh = open(self.path, "a", buffering=1, encoding="utf-8", newline="")  # noqa: SIM115 - open for the session
        if new:
            self._fh.write("iteration,loss,avg_loss\n")

    def add(self, iteration: int, loss: float, avg_loss: float) -> None:
        self._fh.write(f"{iteration},{loss:.6g},{avg_loss:.6g}\n")

    def close(self) -> None:
        self._fh.close()


def load_history(folder: Path) -> list[SessionLoss]:
    """Every session's losses, in session order; unreadable lines (a torn last line) are skipped."""
    sessions = []
    for path in sorted(folder.glob("session-*.csv")):
        entry = SessionLoss(path.stem.removeprefix("session-"))
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    it, loss, avg = int(row["iteration"]), float(row["loss"]), float(row["avg_loss"])
                except (KeyError, TypeError, ValueError):
                    continue
                entry.iterations.append(it)
                entry.loss.append(loss)
                entry.avg_loss.append(avg)
        if entry.iterations:
            sessions.append(entry)
    return sessions


@dataclass(frozen=True)
class Segment:
    """What the chart draws of one session: its label, the iterations no later run redid, and whether it
    belongs to a previous lineage (a later session started over from below its first iteration)."""

    label: str
    iterations: list[int]
    loss: list[float]
    avg_loss: list[float]
    dimmed: bool = False


def _label(session: str, position: int) -> str:
    """``s3`` for a file named ``003-<id>`` (the session number ``status`` shows), else the position."""
    head = session.split("-", 1)[0]
    return f"s{int(head)}" if len(head) == 3 and head.isdigit() else f"s{position + 1}"


def stitch(sessions: list[SessionLoss]) -> list[Segment]:
    """Each iteration once, from the latest run of it: a session that resumed from a backup older than where
    the previous one got to (after a kill) supersedes the previous one's redone tail; a session that starts at
    or below the first iteration of an earlier lineage begins a new lineage, and the old one is dimmed."""
    segments: list[Segment] = []
    lineage_start = 0
    for position, s in enumerate(sessions):
        start = s.iterations[0]
        if segments and start <= segments[lineage_start].iterations[0]:
            for i in range(len(segments)):
                segments[i] = Segment(**{**segments[i].__dict__, "dimmed": True})
            lineage_start = len(segments)
        else:
            for i in range(lineage_start, len(segments)):
                seg = segments[i]
                keep = sum(1 for it in seg.iterations if it < start)
                segments[i] = Segment(seg.label, seg.iterations[:keep], seg.loss[:keep], seg.avg_loss[:keep],
                                      seg.dimmed)
        segments.append(Segment(_label(s.session, position), list(s.iterations), list(s.loss), list(s.avg_loss)))
    return [seg for seg in segments if seg.iterations]


def label_rows(starts: list[float], span: float, min_gap: float = 0.04, rows: int = 4) -> list[int]:
    """A row for each label at x ``starts`` so that labels closer than ``min_gap`` of the axis never share one."""
    last: list[float | None] = [None] * rows
    chosen = []
    for x in starts:
        row = next((r for r in range(rows) if last[r] is None or x - last[r] >= min_gap * span), None)  # type: ignore[operator]
        if row is None:  # crowded: the row whose last label is farthest away
            row = min(range(rows), key=lambda r: last[r] or 0.0)
        last[row] = x
        chosen.append(row)
    return chosen


def render_chart(sessions: list[SessionLoss], out: Path, title: str = "darknet training loss",
                 max_batches: int | None = None) -> bool:
    """Draw loss and avg loss against iteration, sessions shaded and labelled as ``status`` numbers them,
    each iteration once, a previous lineage dimmed; False when there is no data."""
    segments = stitch(sessions)
    if not segments:
        return False
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    current = [seg for seg in segments if not seg.dimmed]
    finite = [v for seg in current for v in seg.avg_loss if math.isfinite(v)]
    lo = min(seg.iterations[0] for seg in segments)
    hi = max(max_batches or 0, *(seg.iterations[-1] for seg in segments))
    rows = label_rows([seg.iterations[0] for seg in segments], max(hi - lo, 1))
    first_current = True
    for n, (seg, row) in enumerate(zip(segments, rows)):
        if seg.dimmed:
            ax.plot(seg.iterations, seg.avg_loss, color="0.6", linewidth=1.0, alpha=0.6,
                    label="previous lineage" if n == 0 else None)
        else:
            ax.plot(seg.iterations, seg.loss, color="tab:blue", alpha=0.25, linewidth=0.8,
                    label="loss" if first_current else None)
            ax.plot(seg.iterations, seg.avg_loss, color="tab:red", linewidth=1.4,
                    label="avg loss" if first_current else None)
            first_current = False
            if n % 2:
                ax.axvspan(seg.iterations[0], seg.iterations[-1], color="0.92", zorder=0)
        ax.axvline(seg.iterations[0], color="0.5", linestyle=":", linewidth=0.8)
        ax.annotate(seg.label, (seg.iterations[0], 1 - 0.05 * row), xycoords=("data", "axes fraction"), fontsize=8,
                    va="top", color="0.6" if seg.dimmed else "0.3", xytext=(2, 0), textcoords="offset points")
    if finite:
        top = sorted(finite)[int(0.98 * (len(finite) - 1))]
        ax.set_ylim(0, max(top * 1.1, 1e-3))
    if max_batches:
        ax.set_xlim(0, max_batches)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out, buf.getvalue())
    return True
