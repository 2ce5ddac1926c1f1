"""Issue 9, cases 4, 5 and 9 with the stand-in darknet: a job file changed between sessions, a user's own cfg with
``train:`` settings, a cut pretrained file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.jobs.darknet.test_job import (  # noqa: F401 - job_dir is a fixture
    FIXTURES,
    cli,
    darknet_logs,
    iterations,
    job_dir,
    job_yaml,
    manifest_counters,
)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_4_a_cfg_change_that_resizes_the_weights_exits_2_and_keeps_the_checkpoints(job_dir: Path) -> None:  # noqa: F811 - the fixture
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0"))
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    store = job_dir / "jobs" / "det" / "store"
    before = snapshot(job_dir / "jobs" / "det")
    cfg = job_dir / "micro.cfg"
    cfg.write_text(cfg.read_text().replace("filters=8\n", "filters=16\n", 1).replace("max_batches=250",
                                                                                     "max_batches=300"))
    result = cli(job_dir, "run", "job.yaml", "--reopen")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "weights size changes" in result.stderr and "--new-lineage" in result.stderr
    assert "revert" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(job_dir / "jobs" / "det") == before  # was: retention deleted every earlier checkpoint

    fresh = cli(job_dir, "run", "job.yaml", "--new-lineage")
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    kept = job_dir / "jobs" / "det" / "previous-lineages" / "lineage-000"
    assert {k: v for k, v in snapshot(kept).items()} == {
        k.removeprefix("store/"): v for k, v in before.items() if k.startswith("store/")}
    assert iterations(darknet_logs(job_dir)[-1])[0] == 1  # trained afresh for the new layers
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 300
    assert store.is_dir()


def test_4_a_class_count_change_on_a_template_exits_2_naming_the_classes(job_dir: Path) -> None:  # noqa: F811 - the fixture
    """The check runs before anything is built: a home that trained yolov3-tiny for one class."""
    from jobs.darknet.classes import adapt_cfg, load_template

    home = job_dir / "jobs" / "det"
    (home / "darknet").mkdir(parents=True)
    kept = adapt_cfg(load_template("yolov3-tiny"), 1, max_batches=2000)
    (home / "darknet" / "yolov3-tiny-obj.cfg").write_text(kept.text())
    text = job_yaml("alexeyab", sleep="0").replace("cfg: ./micro.cfg", "cfg: yolov3-tiny")
    (home / "spec.json").write_text(json.dumps({"kind": "darknet", "cfg": "yolov3-tiny",
                                                "dataset": {"classes": ["box"]}}))
    (job_dir / "job.yaml").write_text(text.replace("classes: [box]", "classes: [box, ball]"))
    before = snapshot(home)
    for command in (["validate", "job.yaml"], ["run", "job.yaml"]):
        result = cli(job_dir, *command)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "dataset.classes ['box'] -> ['box', 'ball']" in result.stderr
    assert snapshot(home) == before


def test_5_train_settings_apply_to_a_users_own_cfg_in_the_jobs_copy(job_dir: Path) -> None:  # noqa: F811 - the fixture
    original = (job_dir / "micro.cfg").read_text()
    text = job_yaml("alexeyab", sleep="0").replace("train: {stop_wait: 30s,", "train: {max_batches: 120, stop_wait: 30s,")
    (job_dir / "job.yaml").write_text(text)
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 120  # was: 250, the setting ignored
    kept = (job_dir / "jobs" / "det" / "darknet" / "micro.cfg").read_text()
    assert "max_batches=120" in kept and "steps=96,108" in kept
    assert (job_dir / "micro.cfg").read_text() == original  # the user's file is untouched
    (job_dir / "job.yaml").write_text(text.replace("max_batches: 120", "max_batches: 150"))
    reopened = cli(job_dir, "run", "job.yaml", "--reopen")
    assert reopened.returncode == 0, reopened.stderr[-3000:]
    assert iterations(darknet_logs(job_dir)[-1])[-1] == 150  # was: "completed" without training


def test_9_a_cut_pretrained_file_is_refused_before_anything_is_built(job_dir: Path) -> None:  # noqa: F811 - the fixture
    data = (FIXTURES / "pjreddie" / "micro_100.weights").read_bytes()
    (job_dir / "darknet53.conv.74").write_bytes(data[:20_000])  # a partial download
    (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep="0") + "pretrained: ./darknet53.conv.74\n")
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "darknet53.conv.74" in result.stderr and "cut off" in result.stderr
    assert not (job_dir / "jobs").exists() or not any((job_dir / "jobs").iterdir())
    shutil.rmtree(job_dir / "jobs", ignore_errors=True)


def test_5_validate_shows_the_cfg_that_will_train_with_the_train_settings(job_dir: Path) -> None:  # noqa: F811 - the fixture
    """Was: `validate` printed the job file's train: fields only; which of them reached the cfg, and its heads,
    were not shown. Now `will_run` is the job's copy of the cfg as darknet will read it."""
    text = job_yaml("alexeyab", sleep="0").replace(
        "train: {stop_wait: 30s,", "train: {max_batches: 120, batch: 8, subdivisions: 2, stop_wait: 30s,")
    (job_dir / "job.yaml").write_text(text)
    result = cli(job_dir, "validate", "job.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    will_run = json.loads(result.stdout)["will_run"]
    assert will_run["cfg"] == "the job's copy of your cfg"
    net = will_run["net"]
    assert (net["max_batches"], net["steps"], net["batch"], net["subdivisions"]) == (120, "96,108", 8, 2)
    assert net["width"] == 64  # micro.cfg's own, not given in train:
    assert [h["classes"] for h in will_run["heads"]] == [1, 1] and will_run["heads"][0]["layer"].startswith("layer ")
    assert not (job_dir / "jobs").exists()  # validate writes nothing


def test_5_validate_shows_a_templates_heads_for_the_job_files_classes(job_dir: Path) -> None:  # noqa: F811 - the fixture
    text = job_yaml("alexeyab", sleep="0").replace("cfg: ./micro.cfg", "cfg: yolov3-tiny")
    (job_dir / "job.yaml").write_text(text.replace("classes: [box]", "classes: [box, ball]"))
    result = cli(job_dir, "validate", "job.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    will_run = json.loads(result.stdout)["will_run"]
    assert will_run["cfg"] == "template yolov3-tiny"
    assert [(h["classes"], h["filters"]) for h in will_run["heads"]] == [(2, 21), (2, 21)]  # (2 + 5) x 3 anchors
    assert (will_run["net"]["max_batches"], will_run["net"]["steps"]) == (6000, "4800,5400")  # the AlexeyAB rule
