from __future__ import annotations

from pathlib import Path

import pytest

from jobs.darknet.cfg import CfgEditor, load_cfg, parse_cfg
from jobs.darknet.classes import TEMPLATES, adapt_cfg, check_classes, load_template, training_schedule, validate_classes
from jobs.darknet.network import header_bytes, walk_network, weights_size
from orchestrator.core.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[3] / ".." / "shared" / "fixtures" / "darknet"


# --- parser -------------------------------------------------------------------------------------------------


def test_parser_reads_sections_options_and_line_numbers_like_darknet() -> None:
    text = "# top comment\n[net]\nbatch = 64\n; other comment\nsubdivisions=16\n\n[convolutional]\nfilters=8\n"
    cfg = parse_cfg(text)
    assert cfg.batch == 64 and cfg.subdivisions == 16
    assert [s.name for s in cfg.layers] == ["convolutional"]
    assert cfg.layers[0].index == 0 and cfg.layers[0].line == 7
    assert cfg.layers[0].option_lines["filters"] == 8


def test_first_occurrence_of_a_key_wins_as_in_darknet() -> None:
    cfg = parse_cfg("[net]\nbatch=1\nbatch=64\n[maxpool]\n")
    assert cfg.batch == 1


def test_malformed_lines_are_reported_with_their_line_number() -> None:
    with pytest.raises(ConfigError, match="line 3"):
        parse_cfg("[net]\nbatch=1\nthis is not an option\n[maxpool]\n")
    with pytest.raises(ConfigError, match="before any"):
        parse_cfg("batch=1\n[net]\n")
    with pytest.raises(ConfigError, match=r"\[net\]"):
        parse_cfg("[convolutional]\nfilters=1\n")


def test_real_cfgs_parse_to_the_layer_counts_darknet_prints() -> None:
    # darknet's layer table in the fixture logs ends at layer 17 for micro.cfg
    assert len(load_cfg(FIXTURES / "micro.cfg").layers) == 18
    assert len(load_cfg(FIXTURES / "cfg" / "yolov3.cfg").layers) == 107
    assert len(load_cfg(FIXTURES / "cfg" / "yolov3-tiny.cfg").layers) == 24


def test_images_per_iteration_uses_integer_division() -> None:
    assert parse_cfg("[net]\nbatch=64\nsubdivisions=16\n[maxpool]\n").images_per_iteration == 64
    assert parse_cfg("[net]\nbatch=10\nsubdivisions=4\n[maxpool]\n").images_per_iteration == 8


def test_editor_keeps_comments_and_inserts_missing_keys() -> None:
    cfg = parse_cfg("[net]\n# keep me\nbatch=1\n[yolo]\nclasses=80\n")
    editor = CfgEditor(cfg)
    editor.set(cfg.net, "batch", 64)
    editor.set(cfg.net, "max_batches", 6000)
    out = editor.result()
    assert out.text() == "[net]\n# keep me\nbatch=64\nmax_batches=6000\n[yolo]\nclasses=80\n"


# --- weights size -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [("micro.cfg", 248_196), ("cfg/yolov3.cfg", 248_007_048), ("cfg/yolov3-tiny.cfg", 35_434_956)],
)
def test_weights_size_matches_files_written_by_real_darknet(name: str, size: int) -> None:
    assert weights_size(load_cfg(FIXTURES / name)) == size


def test_weights_size_matches_the_real_micro_weights_files_on_disk() -> None:
    cfg = load_cfg(FIXTURES / "micro.cfg")
    for fork, major, minor in (("pjreddie", 0, 2), ("alexeyab", 0, 2)):
        for weights in (FIXTURES / fork).glob("micro*.weights"):
            assert weights.stat().st_size == weights_size(cfg, major, minor), weights


def test_header_is_smaller_before_version_0_2() -> None:
    assert header_bytes(0, 1) == 16 and header_bytes(0, 2) == 20 and header_bytes(1, 0) == 20
    cfg = load_cfg(FIXTURES / "micro.cfg")
    assert weights_size(cfg, 0, 1) == 248_196 - 4


@pytest.mark.parametrize(
    ("template", "size"),
    # published sizes of yolov4.weights and yolov4-tiny.weights (AlexeyAB releases)
    [("yolov4", 257_717_640), ("yolov4-tiny", 24_251_276), ("yolov3", 248_007_048), ("yolov3-tiny", 35_434_956)],
)
def test_shipped_templates_give_the_published_weights_sizes(template: str, size: int) -> None:
    assert weights_size(load_template(template)) == size


def test_shape_walk_matches_darknets_printed_table() -> None:
    shapes = walk_network(load_cfg(FIXTURES / "micro.cfg"))
    # from pj_train.stderr: "14 route  13 4 ... 16 x 16 x 48" and "13 upsample ... 16 x 16 x 16"
    assert (shapes[13].out_w, shapes[13].out_h, shapes[13].out_c) == (16, 16, 16)
    assert (shapes[14].out_w, shapes[14].out_c) == (16, 48)
    assert (shapes[11].out_w, shapes[11].out_c) == (8, 32)


def test_grouped_conv_route_groups_shortcut_weights_and_connected() -> None:
    text = (
        "[net]\nwidth=8\nheight=8\nchannels=4\n"
        "[convolutional]\nfilters=8\nsize=3\npad=1\ngroups=2\n"  # 8 + 8*2*9 = 152
        "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"  # 8x8x4
        "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=1\n"  # 8*3 + 8 + 8*4 = 64
        "[shortcut]\nfrom=-3\nweights_type=per_channel\n"  # (1+1)*8 = 16
        "[connected]\noutput=10\n"  # 10 + 10*8*8*8 = 5130
    )
    shapes = walk_network(parse_cfg(text))
    assert [s.params for s in shapes] == [152, 0, 64, 16, 5130]
    assert shapes[1].out_c == 4


def test_unsupported_layer_and_bad_route_are_named() -> None:
    with pytest.raises(ConfigError, match=r"layer 0 \[lstm\]"):
        walk_network(parse_cfg("[net]\nwidth=8\nheight=8\nchannels=3\n[lstm]\n"))
    with pytest.raises(ConfigError, match="line 6"):
        walk_network(parse_cfg("[net]\nwidth=8\nheight=8\nchannels=3\n[route]\nlayers=-1\n"))


# --- classes ------------------------------------------------------------------------------------------------


def test_micro_cfg_matches_its_one_class_dataset() -> None:
    assert check_classes(load_cfg(FIXTURES / "micro.cfg"), 1) == []


def test_class_mismatch_names_layer_line_and_fix() -> None:
    cfg = load_cfg(FIXTURES / "cfg" / "yolov3.cfg")
    problems = check_classes(cfg, 2)
    assert len(problems) == 6  # 3 heads x (classes=, filters=)
    assert problems[0] == "layer 82 [yolo] (line 610): classes=80 but the dataset has 2 classes; set classes=2"
    assert "layer 81 [convolutional] (line 603)" in problems[1] and problems[1].endswith("set filters=21")
    with pytest.raises(ConfigError, match="does not match 2 classes"):
        validate_classes(cfg, 2)


def test_wrong_filters_alone_is_caught() -> None:
    text = (FIXTURES / "micro.cfg").read_text().replace("filters=18", "filters=21", 1)
    problems = check_classes(parse_cfg(text), 1)
    assert len(problems) == 1 and "filters=21" in problems[0] and "set filters=18" in problems[0]


def test_region_layer_formula() -> None:
    text = "[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=125\nsize=1\n[region]\nclasses=20\nnum=5\n"
    assert check_classes(parse_cfg(text), 20) == []
    problems = check_classes(parse_cfg(text), 3)
    assert any("(3 + 4 + 1) * 5 = 40" in p for p in problems)


def test_training_schedule_follows_alexeyab_recommendation() -> None:
    assert training_schedule(1) == (6000, [4800, 5400])
    assert training_schedule(5) == (10000, [8000, 9000])
    assert training_schedule(2, train_images=30000) == (30000, [24000, 27000])
    with pytest.raises(ConfigError):
        training_schedule(0)


@pytest.mark.parametrize("template", TEMPLATES)
def test_templates_adapt_to_any_class_count(template: str) -> None:
    adapted = adapt_cfg(load_template(template), 2)
    assert check_classes(adapted, 2) == []
    assert adapted.batch == 64 and adapted.subdivisions == 16 and adapted.max_batches == 6000
    assert adapted.net.get("steps") == "4800,5400"
    # adapting changes the weights size only in the heads' convs
    assert weights_size(adapted) < weights_size(load_template(template))


def test_adapted_cfg_keeps_everything_else(tmp_path: Path) -> None:
    original = load_cfg(FIXTURES / "cfg" / "yolov3-tiny.cfg")
    adapted = adapt_cfg(original, 3, batch=None, subdivisions=None)
    changed = [(a, b) for a, b in zip(original.lines, adapted.lines) if a != b]
    assert len(original.lines) == len(adapted.lines)
    # max_batches, steps, 2 x filters, 2 x classes
    assert len(changed) == 6
    assert adapted.batch == original.batch
