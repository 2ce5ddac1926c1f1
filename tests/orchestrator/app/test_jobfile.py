"""Bad job files give a one-screen error naming the field (and line), exit 2, and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.app.cli import main
from orchestrator.app.jobfile import parse_job_text
from orchestrator.core.errors import ConfigError
from tests.conftest import job_yaml

BASE = "name: j\nkind: command\ncheckpoint_dir: /tmp\ncommand: [python, x.py]\n"


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_job_text(text, "job.yaml", Path("/base"))
    return str(info.value)


def test_unknown_key_names_field_line_and_valid_keys() -> None:
    message = error_of(BASE + "session:\n  budget: 9h\n  budjet: 3h\n")
    assert "job.yaml:7: session.budjet: unknown key" in message
    assert "budget" in message and "margin" in message and "lease_ttl" in message


def test_wrong_type_names_path_expected_and_found() -> None:
    message = error_of(BASE + "restart:\n  max_restarts: many\n")
    assert "job.yaml:6: restart.max_restarts:" in message and "integer" in message and '"many"' in message


def test_missing_required_field() -> None:
    assert "command: required field is missing" in error_of("name: j\nkind: command\ncheckpoint_dir: /tmp\n")


def test_unknown_kind_lists_kinds() -> None:
    assert "unknown job kind 'pytorch'" in error_of("name: j\nkind: pytorch\ncheckpoint_dir: /tmp\n")


def test_not_yaml_names_the_line() -> None:
    assert "job.yaml:2: not valid YAML: mapping values are not allowed" in error_of("name: j\nkind: command: x\n")


def test_duplicate_key_is_an_error() -> None:
    assert "job.yaml:5: name: key given twice" in error_of(BASE + "name: k\n")


def test_unknown_placeholder() -> None:
    message = error_of("name: j\nkind: command\ncheckpoint_dir: /tmp\ncommand: [python, '{outdir}']\n")
    assert "command" in message and "unknown placeholder {outdir}" in message and "{output_dir}" in message


def test_bad_duration() -> None:
    assert "session.budget" in error_of(BASE + "session: {budget: soon}\n")


def test_env_and_home_expansion_and_relative_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIVE", "/content/drive/MyDrive")
    monkeypatch.setenv("HOME", "/home/u")
    spec = parse_job_text("name: j\nkind: command\ncheckpoint_dir: ${DRIVE}/jobs\nwork_dir: ~/scratch\n"
                          "command: [python]\ncwd: code\n", "job.yaml", Path("/base"))
    assert str(spec.checkpoint_dir) == "/content/drive/MyDrive/jobs"
    assert str(spec.work_dir) == "/home/u/scratch"
    assert str(spec.cwd) == "/base/code"


def test_unset_env_var_is_named() -> None:
    assert "environment variable NOPE_NOT_SET is not set" in error_of(
        "name: j\nkind: command\ncheckpoint_dir: ${NOPE_NOT_SET}/jobs\ncommand: [python]\n")


@pytest.mark.parametrize("content, expected", [
    ("unknown", "unknown key"),
    ("wrong type", "max_restarts"),
    ("missing file", "job file not found"),
    ("empty", "the job file is empty"),
    ("not yaml", "not valid YAML"),
])
def test_bad_spec_exits_2_and_leaves_existing_state_alone(job_dir: Path, content: str, expected: str,
                                                           capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(job_dir)
    assert main(["run", "job.yaml"]) == 0  # an existing, completed job
    capsys.readouterr()
    home = job_dir / "jobs" / "count"
    before = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    bad = job_dir / "job.yaml"
    if content == "unknown":
        bad.write_text(job_yaml() + "colour: blue\n")
    elif content == "wrong type":
        bad.write_text(job_yaml().replace("max_restarts: 2", "max_restarts: lots"))
    elif content == "missing file":
        bad.unlink()
    elif content == "empty":
        bad.write_text("\n")
    else:
        bad.write_text("name: count\nkind: command\n  command: [a\n")
    for command in (["run", "job.yaml"], ["validate", "job.yaml"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err and len(err.splitlines()) < 25
    after = {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}
    assert after == before


def test_validate_prints_normalized_spec(job_dir: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(job_dir)
    assert main(["validate", "job.yaml"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["checkpoint_dir"] == str(job_dir / "jobs") and spec["session"]["margin"] == 0.0


def test_schema_is_json_schema_with_the_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "command" in json.dumps(schema) and schema["title"] == "orchestrator job file"


def test_store_section_errors_name_the_key_not_the_union_tag() -> None:
    message = error_of(BASE + "store:\n  type: drive\n  folder_id: abc\n  creds: sa.json\n")
    assert "job.yaml:8: store.creds: unknown key" in message and "credentials" in message
    message = error_of(BASE + "store:\n  paht: x\n")
    assert "store.paht: unknown key; valid keys here: type, path, max_entries_per_folder" in message


def test_store_defaults_to_a_path_store_in_the_job_home() -> None:
    spec = parse_job_text(BASE, "job.yaml", Path("/base"))
    assert spec.store.type == "path" and spec.store.path is None and spec.retention.keep_last == 3
