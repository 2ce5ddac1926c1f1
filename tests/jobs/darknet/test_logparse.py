from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.darknet.logparse import Iteration, Loaded, LogParser, MeanAP, Problem, Saved, Status, parse_line, parse_log

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "darknet"


def _read(rel: str) -> str:
    return (FIXTURES / rel).read_text(encoding="utf-8", errors="replace")


def _iterations(text: str) -> list[Iteration]:
    return [e for e in parse_log(text) if isinstance(e, Iteration)]


@pytest.mark.parametrize(
    ("log", "count", "first", "last"),
    [
        ("pjreddie/pj_train.stdout", 250, (1, 129.161850, 129.161850, 4), (250, 0.925816, 0.725087, 1000)),
        ("pjreddie/pj_resume.stdout", 150, (101, 1.246882, 1.246882, 404), (250, 0.735880, 0.649666, 1000)),
        ("pjreddie/pj_truncated.stdout", 50, (201, 106.163338, 106.163338, 804), (250, 2.479645, 4.244093, 1000)),
        ("alexeyab/lowlr/ab_lowlr.stdout", 250, (1, 149.858307, 149.858307, 4), (250, 0.720346, 0.656387, 1000)),
    ],
)
def test_real_logs_give_every_iteration(log: str, count: int, first: tuple, last: tuple) -> None:
    its = _iterations(_read(log))
    assert len(its) == count
    assert [i.iteration for i in its] == list(range(first[0], last[0] + 1))
    for it, (number, loss, avg, images) in ((its[0], first), (its[-1], last)):
        assert (it.iteration, it.images) == (number, images)
        assert it.loss == pytest.approx(loss) and it.avg_loss == pytest.approx(avg)


def test_pjreddie_fields() -> None:
    it = _iterations(_read("pjreddie/pj_train.stdout"))[1]
    assert it == Iteration(2, 144.428848, 130.688553, 0.000002, 0.069278, 8, None, "pjreddie")


def test_alexeyab_fields_status_lines_and_nan() -> None:
    events = parse_log(_read("alexeyab/ab_train.stdout"))
    its = [e for e in events if isinstance(e, Iteration)]
    assert len(its) == 250 and all(i.fork == "alexeyab" for i in its)
    assert its[1] == Iteration(2, 109.072601, 112.287331, 0.000002, 0.070412, 8, 0.006630, "alexeyab")
    assert its[0].hours_left == -1.0
    statuses = [e for e in events if isinstance(e, Status)]
    assert len(statuses) == 250 and statuses[0] == Status(1, 250, 112.6, -1.0)
    assert all(s.max_batches == 250 for s in statuses)
    # the real divergence: finite up to 128, nan from 129 on
    assert not math.isnan(its[127].avg_loss) and math.isnan(its[128].avg_loss) and its[128].iteration == 129
    assert all(math.isnan(i.loss) for i in its[128:])
    problems = [e for e in events if isinstance(e, Problem)]
    assert len(problems) == 1 and problems[0].kind == "nan_loss" and "129" in problems[0].message
    assert "learning_rate" in problems[0].fix


def test_saves_from_stderr_of_both_forks() -> None:
    pj = [e for e in parse_log(_read("pjreddie/pj_train.stderr")) if isinstance(e, Saved)]
    assert [(s.kind, s.iteration) for s in pj] == [
        ("backup", None), ("iteration", 100), ("backup", None), ("iteration", 200), ("final", None)
    ]
    ab = [e for e in parse_log(_read("alexeyab/ab_train.stderr")) if isinstance(e, Saved)]
    assert [s.path for s in ab] == ["/content/run/backup_ab/micro_last.weights"] * 2 + [
        "/content/run/backup_ab/micro_final.weights"
    ]


def test_resume_logs_name_the_loaded_weights() -> None:
    loaded = [e for e in parse_log(_read("pjreddie/pj_resume.stderr")) if isinstance(e, Loaded)]
    assert loaded == [Loaded("backup_pj/micro_100.weights")]
    loaded = [e for e in parse_log(_read("alexeyab/ab_resume.stderr")) if isinstance(e, Loaded)]
    assert loaded == [Loaded("backup_ab/micro_last.weights")]


def test_parser_tracks_completion_and_last_iteration() -> None:
    parser = LogParser()
    parser.feed(_read("pjreddie/pj_train.stdout"))
    parser.feed(_read("pjreddie/pj_train.stderr"))
    parser.close()
    assert parser.finished and parser.last_iteration is not None and parser.last_iteration.iteration == 250
    ab = LogParser()
    ab.feed(_read("alexeyab/ab_resume.stdout"))
    assert ab.max_batches == 250 and not ab.finished


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=40))
def test_chunk_boundaries_do_not_change_the_result(cuts: list[int]) -> None:
    text = _read("alexeyab/ab_resume.stdout")
    whole = parse_log(text)
    parser = LogParser()
    events = []
    pos = 0
    for cut in cuts:
        events += parser.feed(text[pos : pos + cut])
        pos += cut
    events += parser.feed(text[pos:]) + parser.close()
    assert repr(events) == repr(whole)  # repr: nan != nan


@pytest.mark.parametrize(
    ("line", "kind", "fix_words"),
    [
        ("CUDA Error: out of memory", "out_of_memory", "subdivisions"),
        (" CUDA status Error: file: ./src/dark_cuda.c: func: cuda_make_array() line: 373", "cuda_error", "compute"),
        ("cuDNN status Error in: file: ./src/convolutional_kernels.cu", "cuda_error", "CUDA"),
        ("Couldn't open file: /content/run/backup/micro.backup", "file_not_found", "backup folder"),
        ("Couldn't open file: data/train.txt", "file_not_found", "obj.data"),
        (" Error: You set incorrect value batch=1 for Training! You should set batch=64 subdivision=64", "batch_too_small", "batch=64"),
        ("Wrong annotation: class_id = 3. But class_id should be [from 0 to 1], file: x.txt", "bad_annotation", "classes="),
    ],
)
def test_problems_are_recognised_with_a_fix(line: str, kind: str, fix_words: str) -> None:
    (event,) = parse_line(line)
    assert isinstance(event, Problem) and event.kind == kind and fix_words in event.fix


def test_each_problem_is_reported_once() -> None:
    parser = LogParser()
    events = parser.feed("CUDA Error: out of memory\nCUDA Error: out of memory\n")
    assert len(events) == 1


def test_normal_region_lines_with_nan_are_not_problems() -> None:
    line = "Region 17 Avg IOU: -nan, Class: -nan, Obj: -nan, No Obj: 0.418571, .5R: -nan, .75R: -nan,  count: 0"
    assert parse_line(line) == []
    assert [e for e in parse_log(_read("pjreddie/pj_train.stdout")) if isinstance(e, Problem)] == []


def test_minus_nan_and_map_lines() -> None:
    (it,) = parse_line(" 7: -nan, -nan avg loss, 0.001 rate, 0.1 seconds, 28 images, 1.5 hours left")
    assert isinstance(it, Iteration) and math.isnan(it.avg_loss) and it.hours_left == 1.5
    (m,) = parse_line(" mean_average_precision (mAP@0.50) = 0.734512 ")
    assert m == MeanAP(0.5, 0.734512)
    (s,) = parse_line("\x1b[H\x1b[J1000/6000: loss=2.1 map=0.71 best=0.73 hours left=3.2\x07")
    assert s == Status(1000, 6000, 2.1, 3.2, 0.71)
