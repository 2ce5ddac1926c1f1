from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from jobs.command.checkpoints import counter_from_name, scan_checkpoints
from orchestrator.app.cli import main
from tests.conftest import cli, job_yaml


@pytest.mark.parametrize("name, counter", [
    ("ckpt-0120.pt", 120), ("epoch_7_step_900.ckpt", 900), ("last.pt", None), ("model-v2-3.weights", 3),
])
def test_counter_is_the_last_number_in_the_name(name: str, counter: int | None) -> None:
    assert counter_from_name(name) == counter


def test_newest_by_counter_not_mtime_and_skips_empty_and_temp(tmp_path: Path) -> None:
    import os

    for name, content, mtime in [("ckpt-9.pt", "x", 300), ("ckpt-10.pt", "x", 100), ("ckpt-11.pt", "", 400),
                                 (".ckpt-12.pt.1.ab.tmp-orch", "x", 500)]:
        path = tmp_path / name
        path.write_text(content)
        os.utime(path, (mtime, mtime))
    found = scan_checkpoints(tmp_path, "ckpt-*.pt")
    assert [f.path.name for f in found] == ["ckpt-10.pt", "ckpt-9.pt"]


def test_resume_args_only_when_a_checkpoint_exists(job_dir: Path) -> None:
    recorder = job_dir / "argv.py"
    recorder.write_text("import json, sys, os\n"
                        "out = sys.argv[1]\n"
                        "open(os.path.join(out, 'argv-%d.json' % len(os.listdir(out))), 'w').write(json.dumps(sys.argv[1:]))\n"
                        "open(os.path.join(out, 'ckpt-5.txt'), 'w').write('5')\n"
                        "sys.exit(0 if len(os.listdir(out)) > 3 else 1)\n")
    (job_dir / "job.yaml").write_text(
        f"name: rec\nkind: command\ncheckpoint_dir: ./jobs\n"
        f"command: ['{sys.executable}', argv.py, '{{output_dir}}']\n"
        f"resume_args: [--resume, '{{latest_checkpoint}}']\ncheckpoints: 'ckpt-*.txt'\n"
        f"restart: {{max_restarts: 1, backoff: 0}}\n")
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr
    out = job_dir / "jobs" / "rec" / "output"
    first = json.loads((out / "argv-0.json").read_text())
    second = json.loads((out / "argv-2.json").read_text())
    assert first == [str(out)]
    assert second == [str(out), "--resume", str(out / "ckpt-5.txt")]


def test_exit_0_without_the_done_file_is_a_crash(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml().replace("done_when: done.txt", "done_when: never.txt")
                                      .replace("max_restarts: 2", "max_restarts: 0"))
    result = cli(job_dir, "run", "job.yaml", env={"STEPS": "2"})
    assert result.returncode == 4
    assert "never.txt was not written" in result.stdout


def test_missing_program_is_a_clear_error(job_dir: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (job_dir / "job.yaml").write_text("name: nope\nkind: command\ncheckpoint_dir: ./jobs\n"
                                      "command: [definitely-not-a-program-xyz]\n")
    monkeypatch.chdir(job_dir)
    assert main(["run", "job.yaml"]) == 2
    assert "program not found: 'definitely-not-a-program-xyz'" in capsys.readouterr().err


def test_arguments_are_never_interpreted_by_a_shell(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(
        f"name: sh\nkind: command\ncheckpoint_dir: ./jobs\n"
        f"command: ['{sys.executable}', '-c', 'import sys; open(sys.argv[1] + \"/arg\", \"w\").write(sys.argv[2])', "
        f"'{{output_dir}}', '$(touch pwned); `touch pwned2` && echo hi > pwned3']\n")
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    out = job_dir / "jobs" / "sh" / "output"
    assert (out / "arg").read_text() == "$(touch pwned); `touch pwned2` && echo hi > pwned3"
    assert not any(p.name.startswith("pwned") for p in job_dir.rglob("*"))


def test_the_demo_job_file_validates() -> None:
    demo = Path(__file__).resolve().parents[3] / "examples" / "demo" / "job.yaml"
    assert main(["validate", str(demo)]) == 0
