from __future__ import annotations

from pathlib import Path

import pytest

from jobs.darknet.spec import DarknetSpec
from orchestrator.app.jobfile import load_job_file, parse_job_text
from orchestrator.core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "darknet.yaml"


def test_the_shipped_example_validates() -> None:
    spec = load_job_file(EXAMPLE)
    assert isinstance(spec, DarknetSpec)
    assert spec.cfg == "yolov3" and spec.dataset.classes == ["person", "head"]
    assert spec.darknet.build.gpu == "auto" and spec.train.stop_wait == 1200


def test_cfg_path_is_relative_to_the_job_file(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace("cfg: yolov3 ", "cfg: cfgs/my.cfg ")
    spec = parse_job_text(text, "job.yaml", tmp_path)
    assert spec.cfg == str(tmp_path / "cfgs" / "my.cfg")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("cfg: yolov3 ", "cfg: yolov9 ", "unknown template"),
    ("  map: false", "  map: false\n  extra_args: [-clear]", "clear_pretrained"),
    ("  format: voc", "  format: coco", "format"),
    ("  map: false", "  mapp: false", "mapp"),
    ("  /WORK1:", "  WORK1:", "absolute"),
])
def test_bad_fields_are_named(old: str, new: str, message: str) -> None:
    text = EXAMPLE.read_text()
    assert old in text
    with pytest.raises(ConfigError, match=message):
        parse_job_text(text.replace(old, new), "job.yaml", Path("/tmp"))
