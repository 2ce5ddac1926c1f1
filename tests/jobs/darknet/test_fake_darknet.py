"""The stand-in darknet speaks what the real one does: checked against the real logs and weights in fixtures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.darknet.cfg import load_cfg
from jobs.darknet.logparse import Iteration, Loaded, Problem, Saved, Status, parse_log
from jobs.darknet.weights import DarknetWeightsValidator

ROOT = Path(__file__).resolve().parents[3]
FAKE = ROOT / "tests" / "fakes" / "darknet"
FIXTURES = ROOT / ".." / "shared" / "fixtures" / "darknet"


def make_run_dir(tmp_path: Path, backup: bool = True, extra_data: str = "") -> Path:
    run = tmp_path / "run dir ü"
    run.mkdir()
    shutil.copy(FIXTURES / "micro.cfg", run / "micro.cfg")
    (run / "train.txt").write_text("images/0.png\n")
    (run / "obj.data").write_text(f"classes=1\ntrain=train.txt\nnames=obj.names\nbackup=backup\n{extra_data}")
    if backup:
        (run / "backup").mkdir()
    return run


def run_fake(run: Path, fork: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FAKE_DARKNET_FORK": fork}
    return subprocess.run(
        [sys.executable, str(FAKE), "detector", "train", "obj.data", "micro.cfg", *args],
        cwd=run, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def _saves(stderr: str) -> list[str]:
    return [Path(e.path).name for e in parse_log(stderr) if isinstance(e, Saved)]


def test_usage_without_arguments() -> None:
    out = subprocess.run([sys.executable, str(FAKE)], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "usage" in out.stderr


@pytest.mark.parametrize(("fork", "real_stderr"), [("pjreddie", "pjreddie/pj_train.stderr"),
                                                  ("alexeyab", "alexeyab/ab_train.stderr")])
def test_fresh_run_saves_what_real_darknet_saves(tmp_path: Path, fork: str, real_stderr: str) -> None:
    run = make_run_dir(tmp_path)
    proc = run_fake(run, fork)
    assert proc.returncode == 0, proc.stderr
    real = (FIXTURES / real_stderr).read_text(errors="replace")
    assert _saves(proc.stderr) == _saves(real)
    its = [e for e in parse_log(proc.stdout) if isinstance(e, Iteration)]
    assert [i.iteration for i in its] == list(range(1, 251)) and all(i.fork == fork for i in its)
    assert its[-1].images == 1000
    validator = DarknetWeightsValidator(load_cfg(run / "micro.cfg"))
    for name in set(_saves(proc.stderr)):
        verdict = validator.validate(run / "backup" / name)
        assert verdict.ok, (name, verdict.reason)
    assert validator.validate(run / "backup" / "micro_final.weights").counter == 250
    if fork == "alexeyab":
        assert validator.validate(run / "backup" / "micro_last.weights").counter == 200
        statuses = [e for e in parse_log(proc.stdout) if isinstance(e, Status)]
        assert len(statuses) == 250 and statuses[0].max_batches == 250
    else:
        assert validator.validate(run / "backup" / "micro.backup").counter == 200


@pytest.mark.parametrize(("fork", "weights", "real"), [
    ("pjreddie", "pjreddie/micro_100.weights", "pjreddie/pj_resume"),
    ("alexeyab", "alexeyab/lowlr/micro_lowlr_last.weights", "alexeyab/ab_resume"),
])
def test_resume_from_real_weights_continues_like_real_darknet(tmp_path: Path, fork: str, weights: str, real: str) -> None:
    run = make_run_dir(tmp_path)
    proc = run_fake(run, fork, str(FIXTURES / weights))
    fake_its = [e.iteration for e in parse_log(proc.stdout) if isinstance(e, Iteration)]
    real_its = [e.iteration for e in parse_log((FIXTURES / f"{real}.stdout").read_text(errors="replace"))
                if isinstance(e, Iteration)]
    assert fake_its == real_its
    assert any(isinstance(e, Loaded) for e in parse_log(proc.stderr))
    real_saves = _saves((FIXTURES / f"{real}.stderr").read_text(errors="replace"))
    assert _saves(proc.stderr) == real_saves


def test_truncated_weights_load_without_complaint_like_darknet(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    proc = run_fake(run, "pjreddie", str(FIXTURES / "pjreddie" / "micro.backup.truncated"))
    assert "Done!" in proc.stderr and proc.returncode == 0
    its = [e.iteration for e in parse_log(proc.stdout) if isinstance(e, Iteration)]
    real = [e.iteration for e in parse_log((FIXTURES / "pjreddie/pj_truncated.stdout").read_text(errors="replace"))
            if isinstance(e, Iteration)]
    assert its == real == list(range(201, 251))


def test_clear_restarts_from_zero(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    proc = run_fake(run, "alexeyab", str(FIXTURES / "pjreddie" / "micro_200.weights"), "-clear")
    its = [e.iteration for e in parse_log(proc.stdout) if isinstance(e, Iteration)]
    assert its[0] == 1 and its[-1] == 250


def test_finished_weights_write_final_at_once(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    proc = run_fake(run, "pjreddie", str(FIXTURES / "pjreddie" / "micro_final.weights"))
    assert [e for e in parse_log(proc.stdout) if isinstance(e, Iteration)] == []
    assert _saves(proc.stderr) == ["micro_final.weights"]


@pytest.mark.parametrize(("fork", "code"), [("pjreddie", 0), ("alexeyab", 1)])
def test_missing_backup_folder_fails_like_darknet(tmp_path: Path, fork: str, code: int) -> None:
    run = make_run_dir(tmp_path, backup=False)
    proc = run_fake(run, fork)
    assert proc.returncode == code  # pjreddie exits 0 after "Couldn't open file"
    problems = [e for e in parse_log(proc.stderr) if isinstance(e, Problem)]
    assert [p.kind for p in problems] == ["file_not_found"] and "micro" in problems[0].line
    its = [e.iteration for e in parse_log(proc.stdout) if isinstance(e, Iteration)]
    assert its[-1] == 100  # it trained until the first save, then died


def test_alexeyab_save_intervals_from_obj_data(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path, extra_data="savelast=50\nsaveweights=200\n")
    proc = run_fake(run, "alexeyab")
    # _last at 50, 100, 150; _200 and _last at 200; _last at 250; then _final
    assert _saves(proc.stderr) == ["micro_last.weights"] * 3 + ["micro_200.weights"] + ["micro_last.weights"] * 2 + [
        "micro_final.weights"
    ]


def test_problems_the_fake_can_show(tmp_path: Path) -> None:
    run = make_run_dir(tmp_path)
    env = {**os.environ, "FAKE_DARKNET_FORK": "alexeyab", "FAKE_DARKNET_NAN_AT": "30", "FAKE_DARKNET_OOM_AT": "40"}
    proc = subprocess.run([sys.executable, str(FAKE), "detector", "train", "obj.data", "micro.cfg", "-dont_show"],
                          cwd=run, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    kinds = [e.kind for e in parse_log(proc.stdout) if isinstance(e, Problem)]
    assert kinds == ["nan_loss", "out_of_memory"]
