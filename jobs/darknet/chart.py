"""Loss history across sessions and the loss chart (PNG) stitched from it.

Each session appends its parsed iterations to ``session-NNN.csv`` (``iteration,loss,avg_loss``) in the job's
durable folder; the chart reads every session's file, so a chart drawn after the fifth disconnect still shows
the whole run, with the session boundaries marked. matplotlib (Agg) is imported only when drawing.
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
        """``session`` names the file; names sort in session order (e.g. ``"003-<session id>"``)."""
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


def render_chart(sessions: list[SessionLoss], out: Path, title: str = "darknet training loss",
                 max_batches: int | None = None) -> bool:
    """Draw loss and avg loss against iteration, sessions shaded and labelled; False when there is no data."""
    if not sessions:
        return False
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    finite = [v for s in sessions for v in s.avg_loss if math.isfinite(v)]
    for n, s in enumerate(sessions):
        ax.plot(s.iterations, s.loss, color="tab:blue", alpha=0.25, linewidth=0.8,
                label="loss" if n == 0 else None)
        ax.plot(s.iterations, s.avg_loss, color="tab:red", linewidth=1.4, label="avg loss" if n == 0 else None)
        if n % 2:
            ax.axvspan(s.iterations[0], s.iterations[-1], color="0.92", zorder=0)
        ax.axvline(s.iterations[0], color="0.5", linestyle=":", linewidth=0.8)
        ax.annotate(f"s{n + 1}", (s.iterations[0], 1), xycoords=("data", "axes fraction"), fontsize=8,
                    va="top", color="0.4")
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
