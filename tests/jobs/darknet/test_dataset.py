from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.darknet.dataset import (
    darknet_label_path,
    dataset_signature,
    discover_classes,
    find_samples,
    in_test_split,
    prepare_dataset,
    shard_names,
)
from jobs.darknet.voc import check_yolo_lines, parse_voc, to_yolo_lines
from orchestrator.core.errors import ConfigError


def voc_xml(objects: list[tuple[str, float, float, float, float]], width: int = 200, height: int = 100) -> bytes:
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
        f"<xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, a, b, c, d in objects
    )
    return (f"<annotation><filename>x.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>").encode()


# --- VOC -> YOLO (pure) -------------------------------------------------------------------------------------


def test_box_is_normalised_to_centre_and_size() -> None:
    ann, issues = parse_voc(voc_xml([("head", 50, 25, 150, 75)]), "a.xml")
    assert ann is not None and issues == []
    lines, issues = to_yolo_lines(ann, {"person": 0, "head": 1})
    assert lines == ["1 0.500000 0.500000 0.500000 0.500000"] and issues == []


def test_out_of_image_boxes_are_clipped_and_reported() -> None:
    ann, _ = parse_voc(voc_xml([("person", -10, 0, 250, 50)]), "a.xml")
    assert ann is not None
    lines, issues = to_yolo_lines(ann, {"person": 0})
    assert lines == ["0 0.500000 0.250000 1.000000 0.500000"]
    assert [i.kind for i in issues] == ["clipped_box"]


def test_unknown_class_degenerate_and_empty_are_issues_not_crashes() -> None:
    ann, _ = parse_voc(voc_xml([("cat", 1, 1, 5, 5), ("person", 300, 0, 400, 50)]), "a.xml")
    assert ann is not None
    lines, issues = to_yolo_lines(ann, {"person": 0})
    assert lines == [] and [i.kind for i in issues] == ["unknown_class", "degenerate_box"]
    assert "'cat'" in issues[0].message
    empty, _ = parse_voc(voc_xml([]), "e.xml")
    assert empty is not None and [i.kind for i in to_yolo_lines(empty, {"person": 0})[1]] == ["empty"]


@pytest.mark.parametrize(("data", "kind"), [
    (b"<annotation><size>", "malformed"),
    (b"<notvoc/>", "malformed"),
    (b"<annotation><size><width>0</width><height>10</height></size></annotation>", "no_size"),
])
def test_malformed_xml_is_reported(data: bytes, kind: str) -> None:
    ann, issues = parse_voc(data, "bad.xml")
    assert ann is None and [i.kind for i in issues] == [kind]


def test_incomplete_object_is_skipped_with_an_issue() -> None:
    data = b"<annotation><size><width>10</width><height>10</height></size><object><name>a</name></object></annotation>"
    ann, issues = parse_voc(data, "x.xml")
    assert ann is not None and ann.objects == [] and issues[0].kind == "malformed"


def test_existing_yolo_lines_are_checked() -> None:
    good, issues = check_yolo_lines("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\nx y\n", 2, "l.txt")
    assert good == ["0 0.5 0.5 0.2 0.2"]
    assert [i.kind for i in issues] == ["unknown_class", "degenerate_box", "malformed"]


# --- layout, split, shards ----------------------------------------------------------------------------------


def make_voc(root: Path, n: int, classes: tuple[str, ...] = ("person", "head")) -> None:
    root.mkdir(parents=True)
    for i in range(n):
        (root / f"img{i:04d}.jpg").write_bytes(b"\xff\xd8fakejpeg" + bytes([i % 256]))
        cls = classes[i % len(classes)]
        (root / f"img{i:04d}.xml").write_bytes(voc_xml([(cls, 10, 10, 60, 40)]))


def test_shard_names_are_one_pass_and_bounded() -> None:
    names = shard_names(2500, 1000)
    assert names[0] == "00000" and names[999] == "00000" and names[1000] == "00001" and names[-1] == "00002"
    with pytest.raises(ConfigError):
        shard_names(3, 0)


def test_split_is_deterministic_and_stable_under_additions() -> None:
    rels = [f"a/{i}.jpg" for i in range(2000)]
    first = {r for r in rels if in_test_split(r, 0.1, "orchestrator")}
    assert 160 < len(first) < 240  # 200 expected, +-3 sd
    more = rels + [f"b/{i}.jpg" for i in range(500)]
    assert {r for r in more if in_test_split(r, 0.1, "orchestrator")} & set(rels) == first


def test_prepare_writes_everything_darknet_needs(tmp_path: Path) -> None:
    src = tmp_path / "dataset ü"
    make_voc(src, 30)
    (src / "img0003.xml").write_bytes(b"<annotation><broken")
    (src / "img0004.xml").write_bytes(voc_xml([("dog", 1, 1, 5, 5)]))
    out = tmp_path / "work_dir_ü"
    report = prepare_dataset(src, out, "voc", ["person", "head"], max_files_per_folder=10, test_fraction=0.2)
    assert report.train + report.test == 30 and report.folders == 6  # 5 samples (10 files) per folder
    assert report.counts() == {"malformed": 1, "unknown_class": 1}
    data = (out / "obj.data").read_text()
    assert "classes = 2" in data and f"backup = {out / 'backup'}" in data
    assert (out / "obj.names").read_text() == "person\nhead\n"
    listed = (out / "train.txt").read_text().splitlines() + (out / "test.txt").read_text().splitlines()
    assert len(listed) == 30 and all(Path(p).is_file() and Path(p).with_suffix(".txt").is_file() for p in listed)
    assert all(len(list(d.iterdir())) <= 10 for d in (out / "data").iterdir())
    label = (out / "data" / "00000" / "img0001.txt").read_text()
    assert label == "1 0.175000 0.250000 0.250000 0.300000\n"
    assert (out / "data" / "00000" / "img0003.txt").read_text() == ""  # malformed: no boxes, reported
    saved = json.loads((out / "prepare_report.json").read_text())
    assert saved["issue_counts"] == {"malformed": 1, "unknown_class": 1}
    # re-run: same split, same files
    again = prepare_dataset(src, out, "voc", ["person", "head"], max_files_per_folder=10, test_fraction=0.2)
    assert (again.train, again.test) == (report.train, report.test)


def test_classes_from_the_data_when_yaml_has_none(tmp_path: Path) -> None:
    make_voc(tmp_path / "d", 6, classes=("zebra", "ant"))
    assert discover_classes(find_samples(tmp_path / "d", "voc")) == ["ant", "zebra"]
    report = prepare_dataset(tmp_path / "d", tmp_path / "o", "voc", None)
    assert report.classes == ["ant", "zebra"]


def test_voc_layout_with_annotations_folder(tmp_path: Path) -> None:
    voc = tmp_path / "VOC2007"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    (voc / "JPEGImages" / "000001.jpg").write_bytes(b"jpg")
    (voc / "Annotations" / "000001.xml").write_bytes(voc_xml([("person", 0, 0, 100, 100)]))
    samples = find_samples(tmp_path, "voc")
    assert len(samples) == 1 and samples[0].annotation == voc / "Annotations" / "000001.xml"


def test_yolo_layout(tmp_path: Path) -> None:
    src = tmp_path / "y"
    src.mkdir()
    (src / "a.png").write_bytes(b"png")
    (src / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = prepare_dataset(src, tmp_path / "o", "yolo", ["box"], test_fraction=0.0)
    assert report.train == 1 and report.boxes == 1
    with pytest.raises(ConfigError, match="classes"):
        prepare_dataset(src, tmp_path / "o2", "yolo", None)


def test_pjreddie_label_lookup_is_checked(tmp_path: Path) -> None:
    assert darknet_label_path("/w/data/00000/a.jpg", "pjreddie") == "/w/data/00000/a.txt"
    assert darknet_label_path("/w/images/00000/a.jpg", "pjreddie") == "/w/labels/00000/a.txt"
    assert darknet_label_path("/w/images/a.jpeg", "alexeyab") == "/w/images/a.txt"
    make_voc(tmp_path / "src", 2)
    with pytest.raises(ConfigError, match="images"):
        prepare_dataset(tmp_path / "src", tmp_path / "my_images", "voc", ["person", "head"], fork="pjreddie")
    # AlexeyAB only rewrites /images/train2017/-style paths: fine there
    prepare_dataset(tmp_path / "src", tmp_path / "my_images", "voc", ["person", "head"], fork="alexeyab")


def test_bad_inputs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a folder"):
        prepare_dataset(tmp_path / "nope", tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        prepare_dataset(tmp_path / "empty", tmp_path / "o")
    with pytest.raises(ConfigError, match="format"):
        find_samples(tmp_path / "empty", "coco")


def test_paths_with_spaces_are_refused_because_darknet_strips_them(tmp_path: Path) -> None:
    make_voc(tmp_path / "src", 2)
    with pytest.raises(ConfigError, match="spaces"):
        prepare_dataset(tmp_path / "src", tmp_path / "work dir", "voc", ["person", "head"])


def test_signature_changes_with_added_or_rewritten_files_only(tmp_path: Path) -> None:
    make_voc(tmp_path / "d", 4)
    first = dataset_signature(tmp_path / "d")
    assert dataset_signature(tmp_path / "d") == first
    (tmp_path / "d" / "notes.md").write_text("ignored")
    assert dataset_signature(tmp_path / "d") == first
    (tmp_path / "d" / "img0001.xml").write_bytes(voc_xml([("head", 1, 1, 9, 9)]))
    second = dataset_signature(tmp_path / "d")
    assert second != first
    (tmp_path / "d" / "new.jpg").write_bytes(b"x")
    assert dataset_signature(tmp_path / "d") not in (first, second)
    assert dataset_signature(tmp_path / "missing") == "missing"
