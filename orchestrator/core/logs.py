"""Logging to the console and to each session's log file in the job's home; tqdm progress bars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The one root of our loggers: the console and the session log attach here and sweep in no other library's.
ROOT_LOGGER = "orchestrator"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def get_logger(module: str) -> logging.Logger:
    """The logger of one of our modules, under :data:`ROOT_LOGGER` (``jobs.darknet.job`` -> ``orchestrator.jobs...``)."""
    if module == ROOT_LOGGER or module.startswith(ROOT_LOGGER + "."):
        return logging.getLogger(module)
    return logging.getLogger(f"{ROOT_LOGGER}.{module}")


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record through ``tqdm.write``: an active progress bar is cleared, the line printed on a line
    of its own, and the bar drawn again below it (without a bar: a plain line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)


def setup_console_logging(verbose: bool = False) -> None:
    handler = ConsoleHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger = logging.getLogger(ROOT_LOGGER)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(getattr(h, "_orchestrator_console", False) for h in logger.handlers):
        handler._orchestrator_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


@contextmanager
def session_log(path: Path) -> Iterator[None]:
    """Copy every record of our loggers into ``path`` for the duration of a session."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger(ROOT_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def progress_bar(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    """A tqdm bar that renders in a terminal and in a notebook cell alike.

    Colab runs ``!python -m orchestrator ...`` without a TTY, where tqdm would hide itself: the bar stays on
    and refreshes less often instead.
    """
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty()
    options: dict[str, Any] = {"dynamic_ncols": True, "disable": False, "mininterval": 1.0 if interactive else 10.0}
    return tqdm(total=total, desc=desc, unit=unit, **{**options, **kwargs})


class ProgressDisplay:
    """The job's main progress bar plus pass-through output lines that do not tear the bar."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._bar: Any = None

    def update(self, counter: int, total: int | None, unit: str) -> None:
        if self._bar is None:
            self._bar = progress_bar(total, self.desc, unit, initial=counter)
        if total is not None and self._bar.total != total:
            self._bar.total = total
        if counter != self._bar.n:
            self._bar.n = counter
            self._bar.refresh() if sys.stderr.isatty() else self._bar.update(0)

    def show(self, line: str) -> None:
        if self._bar is not None and sys.stderr.isatty():
            self._bar.write(line)  # clears the bar, prints the line, redraws the bar
        else:
            print(line, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
