"""A corpus of bad job files and bad data, every kind: ``validate`` and ``run`` exit 2 with a message naming the
field or file, print no traceback, and leave every job home byte-identical (an existing one, of a completed
job, included)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from tests.conftest import TRAINER, job_yaml

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO.parent / "shared" / "fixtures" / "darknet"
PJ_WEIGHTS = FIXTURES / "pjreddie" / "micro_100.weights"

COMMAND = job_yaml()
DARKNET = """\
name: det
kind: darknet
checkpoint_dir: ./jobs
work_dir: ./work
darknet: {binary: ./bin/darknet, fork: alexeyab}
dataset: {path: ./voc data, format: voc, classes: [box]}
cfg: ./micro.cfg
session: {budget: 1h, margin: 0, heartbeat: 1s, clock: process}
"""
FACE = """\
name: faces
kind: face_detection
checkpoint_dir: ./jobs
work_dir: ./work
inputs: [./photos]
model: retinaface-mobilenet0.25
weights: ./weights/mobilenet0.25_Final.pth
"""


def edit(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new)


#: (id, job file text, the text the error must contain)
CASES: list[tuple[str, str, str]] = [
    # -- command: the job file ------------------------------------------------------------------------------
    ("unknown-key", COMMAND + "comand: [x]\n", "comand"),
    ("missing-command", "name: count\nkind: command\ncheckpoint_dir: ./jobs\n", "command"),
    ("empty-command", edit(COMMAND, 'command: ["', 'command: []\nx_unused: ["'), "command"),
    ("unknown-placeholder", edit(COMMAND, "{output_dir}", "{outdir}"), "outdir"),
    ("absolute-checkpoints", edit(COMMAND, 'checkpoints: "ckpt-*.txt"', 'checkpoints: "/abs/ckpt-*.txt"'),
     "checkpoints"),
    ("done-when-escapes", edit(COMMAND, "done_when: done.txt", "done_when: ../done.txt"), "done_when"),
    ("bad-regex", edit(COMMAND, "pattern: 'step (?P<counter>\\d+)/(?P<total>\\d+)'", "pattern: 'step (('"),
     "pattern"),
    ("regex-without-counter", edit(COMMAND, "(?P<counter>\\d+)", "(\\d+)"), "counter"),
    ("margin-over-budget", edit(COMMAND, "margin: 0,", "margin: 2h,"), "margin"),
    ("bad-duration", edit(COMMAND, "budget: 1h,", "budget: 12 hours,"), "budget"),
    ("bad-clock", edit(COMMAND, "heartbeat: 1s}", "heartbeat: 1s, clock: wall}"), "clock"),
    ("heartbeat-over-ttl", edit(COMMAND, "heartbeat: 1s}", "heartbeat: 20m}"), "heartbeat"),
    ("negative-restarts", edit(COMMAND, "max_restarts: 2", "max_restarts: -1"), "max_restarts"),
    ("bad-stop-signal", COMMAND + "stop_signal: SIGKILL\n", "stop_signal"),
    ("name-with-slash", edit(COMMAND, "name: count", "name: a/b"), "name"),
    ("unknown-kind", edit(COMMAND, "kind: command", "kind: pytorch"), "pytorch"),
    ("retention-unknown-key", COMMAND + "retention: {keep_latest: 2}\n", "keep_latest"),
    ("missing-cwd", COMMAND + "cwd: ./no such folder\n", "cwd"),
    ("missing-script", edit(COMMAND, '"train.py"', '"trian.py"'), "trian.py"),
    ("missing-program", edit(COMMAND, f'command: ["{sys.executable}"', 'command: ["./bin/no-such-trainer"'),
     "no-such-trainer"),
    ("checkpoint-dir-nowhere", edit(COMMAND, "checkpoint_dir: ./jobs", "checkpoint_dir: ./no/such/drive"),
     "checkpoint_dir"),
    ("yaml-syntax", COMMAND + "env: {A: [1, 2}\n", "job.yaml"),
    ("not-a-mapping", "- just\n- a list\n", "job.yaml"),
    ("kind-change-over-home", DARKNET.replace("name: det", "name: count"), "'command' job"),
    # -- darknet: the job file and its files ----------------------------------------------------------------
    ("dn-missing-dataset", edit(DARKNET, "path: ./voc data", "path: ./no data"), "dataset.path"),
    ("dn-missing-cfg", edit(DARKNET, "cfg: ./micro.cfg", "cfg: ./mikro.cfg"), "mikro.cfg"),
    ("dn-unknown-template", edit(DARKNET, "cfg: ./micro.cfg", "cfg: yolov9"), "yolov9"),
    ("dn-source-and-binary", edit(DARKNET, "{binary: ./bin/darknet,", "{binary: ./bin/darknet, source: ./src,"),
     "darknet"),
    ("dn-missing-binary", edit(DARKNET, "binary: ./bin/darknet", "binary: ./bin/darknot"), "darknet.binary"),
    ("dn-missing-source-folder", edit(DARKNET, "binary: ./bin/darknet", "source: ./darknet-src"), "darknet.source"),
    ("dn-missing-pretrained", DARKNET + "pretrained: ./weights/darknet53.conv.74\n", "pretrained"),
    ("dn-cut-pretrained", DARKNET + "pretrained: ./weights/cut.conv.2\n", "cut off"),
    ("dn-html-pretrained", DARKNET + "pretrained: ./weights/page.weights\n", "page.weights"),
    ("dn-foreign-pretrained", DARKNET + "pretrained: ./weights/junk.weights\n", "junk.weights"),
    ("dn-clear-in-extra-args", DARKNET + "train: {extra_args: [-clear]}\n", "-clear"),
    ("dn-stop-wait-over-margin", edit(DARKNET, "margin: 0,", "margin: 30s,") + "train: {stop_wait: 10m}\n",
     "stop_wait"),
    ("dn-width-not-32", DARKNET + "train: {width: 100}\n", "width"),
    ("dn-unknown-format", edit(DARKNET, "format: voc", "format: coco"), "format"),
    ("dn-test-fraction", edit(DARKNET, "classes: [box]", "classes: [box], test_fraction: 1.5"), "test_fraction"),
    ("dn-relative-alias", DARKNET + "path_aliases: {WORK1: ./data}\n", "WORK1"),
    ("dn-bad-sha256", DARKNET + "pretrained: ./weights/part.conv.2\npretrained_sha256: abc\n", "pretrained_sha256"),
    ("dn-compute-capability", edit(DARKNET, "fork: alexeyab}", "fork: alexeyab, build: {compute_capability: sm75}}"),
     "compute_capability"),
    ("dn-cfg-unknown-layer", edit(DARKNET, "cfg: ./micro.cfg", "cfg: ./weird.cfg"), "weird.cfg"),
    # -- face_detection: the job file, its inputs and its weights -------------------------------------------
    ("face-missing-inputs", edit(FACE, "inputs: [./photos]", "inputs: [./fotos]"), "inputs"),
    ("face-missing-weights", edit(FACE, "mobilenet0.25_Final.pth", "nope.pth"), "nope.pth"),
    ("face-darknet-weights", edit(FACE, "mobilenet0.25_Final.pth", "micro_100.weights"), "weights:"),
    ("face-html-weights", edit(FACE, "mobilenet0.25_Final.pth", "page.pth"), "weights:"),
    ("face-truncated-pth", edit(FACE, "mobilenet0.25_Final.pth", "cut.pth"), "weights:"),
    ("face-unknown-model", edit(FACE, "model: retinaface-mobilenet0.25", "model: yolo-face"), "model"),
    ("face-zero-nms", FACE + "thresholds: {nms: 0}\n", "nms"),
    ("face-zero-batch", FACE + "batch_size: 0\n", "batch_size"),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def completed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a completed command job's home (built once, copied for each case)."""
    folder = tmp_path_factory.mktemp("corpus") / "my jobs ü"
    (folder / "jobs").mkdir(parents=True)
    (folder / "train.py").write_text(TRAINER)
    (folder / "job.yaml").write_text(COMMAND)
    mp = pytest.MonkeyPatch()
    mp.chdir(folder)
    mp.setenv("STEPS", "3")
    mp.setenv("STEP_SECONDS", "0")
    try:
        assert main(["run", "job.yaml"]) == 0
    finally:
        mp.undo()
    return folder


def prepare_files(folder: Path) -> None:
    """The files the darknet and face job files read (good ones, and the bad ones the cases point at)."""
    (folder / "voc data").mkdir()
    (folder / "bin").mkdir()
    (folder / "bin" / "darknet").write_text("#!/bin/sh\nexit 0\n")
    (folder / "bin" / "darknet").chmod(0o755)
    shutil.copy(FIXTURES / "micro.cfg", folder / "micro.cfg")
    (folder / "weird.cfg").write_text((FIXTURES / "micro.cfg").read_text().replace("[maxpool]", "[teleport]", 1))
    weights = folder / "weights"
    weights.mkdir()
    data = PJ_WEIGHTS.read_bytes()
    (weights / "cut.conv.2").write_bytes(data[: 20 + 4 * 1000])  # ends inside layer 2
    (weights / "part.conv.2").write_bytes(data[: 20 + 4 * 1464])  # a whole partial file
    (weights / "page.weights").write_text("<!DOCTYPE html><html><body>Google Drive - quota exceeded</body></html>")
    (weights / "junk.weights").write_bytes(b"\xff" * 4000)
    shutil.copy(PJ_WEIGHTS, weights / "micro_100.weights")
    (weights / "page.pth").write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    torch = pytest.importorskip("torch")
    torch.save({"body.conv1.weight": torch.zeros(8, 3, 3, 3)}, weights / "full.pth")
    full = (weights / "full.pth").read_bytes()
    (weights / "cut.pth").write_bytes(full[: len(full) // 2])
    (folder / "photos").mkdir()
    shutil.copy(REPO / "tests" / "data" / "astronaut.jpg", folder / "photos" / "astronaut.jpg")


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case_id for case_id, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("case_id", "text", "needle"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_naming_the_field_and_changes_nothing(
        case_id: str, text: str, needle: str, completed_home: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "my jobs ü"
    shutil.copytree(completed_home, folder)
    prepare_files(folder)
    (folder / "job.yaml").write_text(text)
    before = snapshot(folder / "jobs")
    monkeypatch.chdir(folder)
    for command in ("validate", "run"):
        code = main([command, "job.yaml"])
        _out, err = capsys.readouterr()
        assert code == 2, f"{command}: exit {code}\n{err}"
        assert needle in err, f"{command}: {needle!r} not named in:\n{err}"
        assert "Traceback" not in err
        assert snapshot(folder / "jobs") == before, f"{command} changed the job homes"
    assert not (folder / "work").exists() or not any((folder / "work").iterdir())
