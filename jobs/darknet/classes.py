"""Class count of a darknet cfg: validation (darknet's most common user error) and template adaptation.

Each detection head must agree with the dataset: ``classes=`` in every ``[yolo]``/``[region]`` layer, and
``filters=`` of the ``[convolutional]`` layer just before it:

* ``[yolo]``: ``(classes + 5) * len(mask)`` (``num`` when there is no ``mask``);
* ``[Gaussian_yolo]``: ``(classes + 9) * len(mask)``;
* ``[region]``: ``(classes + coords + 1) * num`` (``coords`` defaults to 4).

Templates (the stock AlexeyAB cfgs shipped in ``templates/``; darknet is public domain) are adapted the way
AlexeyAB's README recommends: ``max_batches = classes * 2000``, but not less than the number of training
images and not less than 6000; ``steps`` at 80% and 90% of it; ``batch=64``, ``subdivisions=16``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from jobs.darknet.cfg import CfgEditor, DarknetCfg, Section, parse_cfg
from jobs.darknet.network import walk_network
from orchestrator.core.errors import ConfigError

HEAD_LAYERS = ("yolo", "gaussian_yolo", "region")
TEMPLATES = ("yolov3", "yolov3-tiny", "yolov4", "yolov4-tiny")


@dataclass(frozen=True)
class Head:
    """A detection layer and the conv layer that feeds it."""

    layer: Section
    conv: Section | None
    anchors_used: int  # len(mask), or num

    def expected_filters(self, classes: int) -> int:
        if self.layer.name == "region":
            coords = self.layer.get_int("coords", 4)
            return (classes + coords + 1) * self.anchors_used
        extra = 9 if self.layer.name == "gaussian_yolo" else 5
        return (classes + extra) * self.anchors_used


def find_heads(cfg: DarknetCfg) -> list[Head]:
    heads = []
    for sec in cfg.layers:
        if sec.name not in HEAD_LAYERS:
            continue
        if sec.name == "region":
            used = sec.get_int("num", 1)
        else:
            mask = sec.get_ints("mask")
            used = len(mask) if mask else sec.get_int("num", 1)
        before = cfg.layers[sec.index - 1] if sec.index > 0 else None
        conv = before if before is not None and before.name in ("convolutional", "conv") else None
        heads.append(Head(layer=sec, conv=conv, anchors_used=used))
    return heads


def check_classes(cfg: DarknetCfg, classes: int) -> list[str]:
    """Every disagreement between the cfg and ``classes``, as sentences naming the layer, line and fix."""
    heads = find_heads(cfg)
    if not heads:
        return [f"{cfg.source}: no [yolo] or [region] layer found; is this a detection cfg?"]
    problems = []
    shapes = walk_network(cfg)
    for head in heads:
        sec = head.layer
        declared = sec.get_int("classes", 20)
        if declared != classes:
            problems.append(
                f"{sec.where('classes')}: classes={declared} but the dataset has {classes} classes; "
                f"set classes={classes}"
            )
        want = head.expected_filters(classes)
        if head.conv is not None:
            have = head.conv.get_int("filters", 1)
            if have != want:
                formula = _formula(head, classes)
                problems.append(
                    f"{head.conv.where('filters')} before {sec.where()}: filters={have} but {formula} = {want}; "
                    f"set filters={want}"
                )
        else:
            have = shapes[sec.index - 1].out_c if sec.index > 0 else 0
            if have != want:
                problems.append(
                    f"{sec.where()}: its input has {have} channels but {_formula(head, classes)} = {want}; "
                    f"the layer before it must output {want} channels"
                )
    return problems


def _formula(head: Head, classes: int) -> str:
    if head.layer.name == "region":
        return f"(classes + coords + 1) * num = ({classes} + {head.layer.get_int('coords', 4)} + 1) * {head.anchors_used}"
    extra = 9 if head.layer.name == "gaussian_yolo" else 5
    what = "len(mask)" if head.layer.get("mask") else "num"
    return f"(classes + {extra}) * {what} = ({classes} + {extra}) * {head.anchors_used}"


def validate_classes(cfg: DarknetCfg, classes: int) -> None:
    """Raise ConfigError listing every class-count problem of ``cfg`` (all of them, not just the first)."""
    problems = check_classes(cfg, classes)
    if problems:
        raise ConfigError(
            f"darknet cfg {cfg.source} does not match {classes} classes:\n  - " + "\n  - ".join(problems)
        )


def training_schedule(classes: int, train_images: int = 0) -> tuple[int, list[int]]:
    """``(max_batches, steps)`` as AlexeyAB's README recommends."""
    if classes < 1:
        raise ConfigError(f"classes must be at least 1, got {classes}")
    max_batches = max(classes * 2000, train_images, 6000)
    return max_batches, [max_batches * 8 // 10, max_batches * 9 // 10]


def adapt_cfg(
    cfg: DarknetCfg,
    classes: int,
    *,
    train_images: int = 0,
    max_batches: int | None = None,
    batch: int | None = 64,
    subdivisions: int | None = 16,
    width: int | None = None,
    height: int | None = None,
    learning_rate: float | None = None,
    burn_in: int | None = None,
) -> DarknetCfg:
    """``cfg`` rewritten for ``classes`` (heads and their convs) and a training schedule; comments kept."""
    editor = CfgEditor(cfg)
    for head in find_heads(cfg):
        editor.set(head.layer, "classes", classes)
        if head.conv is None:
            raise ConfigError(
                f"{head.layer.where()}: the layer before it is [{cfg.layers[head.layer.index - 1].name}], "
                "not [convolutional]; cannot adapt its filters automatically"
            )
        editor.set(head.conv, "filters", head.expected_filters(classes))
    if max_batches is None:
        max_batches, steps = training_schedule(classes, train_images)
    else:
        steps = [max_batches * 8 // 10, max_batches * 9 // 10]
    editor.set(cfg.net, "max_batches", max_batches)
    editor.set(cfg.net, "steps", ",".join(str(s) for s in steps))
    for key, value in (("batch", batch), ("subdivisions", subdivisions), ("width", width), ("height", height),
                       ("learning_rate", learning_rate), ("burn_in", burn_in)):
        if value is not None:
            editor.set(cfg.net, key, value)
    adapted = editor.result()
    validate_classes(adapted, classes)
    return adapted


#: ``train:`` fields that edit the cfg's [net] section
NET_SETTINGS = ("max_batches", "batch", "subdivisions", "width", "height", "learning_rate", "burn_in")


def apply_net_settings(cfg: DarknetCfg, settings: dict[str, float]) -> DarknetCfg:
    """A user's own cfg with the ``train:`` settings the job file gives (its copy; the user's file is untouched).

    ``max_batches`` also moves ``steps`` to 80% and 90% of it, as for the templates."""
    editor = CfgEditor(cfg)
    for key, value in settings.items():
        editor.set(cfg.net, key, value)
    if "max_batches" in settings:
        top = settings["max_batches"]
        editor.set(cfg.net, "steps", f"{top * 8 // 10},{top * 9 // 10}")
    return editor.result()


def load_template(name: str) -> DarknetCfg:
    """A stock cfg shipped with orchestrator (``yolov3``, ``yolov3-tiny``, ``yolov4``, ``yolov4-tiny``)."""
    if name not in TEMPLATES:
        raise ConfigError(f"unknown darknet cfg template {name!r}; templates: {', '.join(TEMPLATES)}")
    text = resources.files("jobs.darknet").joinpath("templates", f"{name}.cfg").read_text(encoding="utf-8")
    return parse_cfg(text, source=f"template {name}")
