"""The loss chart: sessions numbered as ``status`` numbers them, each iteration once, old lineages dimmed,
labels that never share a row when close."""

from __future__ import annotations

from pathlib import Path

from jobs.darknet.chart import LossHistory, label_rows, load_history, render_chart, stitch


def write(folder: Path, name: str, iterations: range) -> None:
    history = LossHistory(folder, name)
    for it in iterations:
        history.add(it, 10.0 / it, 9.0 / it)
    history.close()


def test_a_resume_after_a_kill_redraws_nothing_twice_and_keeps_the_status_numbers(tmp_path: Path) -> None:
    write(tmp_path, "001-aaa", range(1, 151))  # killed at 150; the last backup was at 100
    write(tmp_path, "002-bbb", range(101, 301))
    write(tmp_path, "004-ddd", range(301, 321))  # session 3 ran no darknet (stopped while preparing)
    segments = stitch(load_history(tmp_path))
    assert [seg.label for seg in segments] == ["s1", "s2", "s4"]
    drawn = [it for seg in segments for it in seg.iterations]
    assert drawn == list(range(1, 321))  # each iteration once: the latest run of 101..150
    assert not any(seg.dimmed for seg in segments)
    out = tmp_path / "loss.png"
    assert render_chart(load_history(tmp_path), out, max_batches=400) and out.stat().st_size > 1000


def test_starting_over_dims_the_previous_lineage(tmp_path: Path) -> None:
    write(tmp_path, "001-aaa", range(1, 201))
    write(tmp_path, "002-bbb", range(1, 51))  # a new lineage (e.g. the cfg changed, training from scratch)
    first, second = stitch(load_history(tmp_path))
    assert first.dimmed and first.iterations == list(range(1, 201)) and not second.dimmed


def test_close_session_labels_go_on_different_rows() -> None:
    starts = [0, 10, 20, 500, 510, 1000]
    rows = label_rows(starts, span=1000, min_gap=0.04)
    for i, (x, row) in enumerate(zip(starts, rows)):
        for x2, row2 in zip(starts[:i], rows[:i]):
            assert row != row2 or x - x2 >= 40
    assert rows[3] == 0 and rows[5] == 0  # far apart: the top row again
