"""Console lines and the progress bar share stderr without gluing onto each other."""

from __future__ import annotations

import io
import logging
import re

from orchestrator.core.logs import ConsoleHandler, progress_bar


def test_a_log_line_goes_above_the_bar_on_a_line_of_its_own() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("orchestrator.test_console")
    handler = ConsoleHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        bar = progress_bar(100, "job", "iter", file=stream, mininterval=0)
        bar.update(40)
        logger.warning("checkpoint saved")
        bar.update(10)
        bar.close()
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    lines = re.split(r"[\r\n]", text)
    assert "WARNING checkpoint saved" in lines  # a whole line: nothing of the bar before or after it
    assert text.index("40/100") < text.index("checkpoint saved") < text.rindex("50/100")  # bar redrawn below
