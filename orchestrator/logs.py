"""Logging to the console and to each session's log file in the job's home; tqdm progress bars."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: Loggers of our packages; the session log captures all of them.
OUR_LOGGERS = ("orchestrator", "jobs", "checkpoints", "darknet_patch")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_console_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    for name in OUR_LOGGERS:
        logger = logging.getLogger(name)
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
    loggers = [logging.getLogger(name) for name in OUR_LOGGERS]
    for logger in loggers:
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


def progress_bar(total: int | None, desc: str, unit: str = "it", **kwargs: Any) -> Any:
    """A tqdm bar that renders in a terminal and in a notebook cell alike."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=1.0, **kwargs)
