"""PASCAL VOC XML annotations to YOLO label lines (pure: bytes in, lines and issues out).

A YOLO label line is ``<class index> <x center> <y center> <width> <height>``, all four normalised to [0, 1]
by the image size. Boxes are clipped to the image first (VOC tools often write ``xmax = width + 1`` or
negative coordinates); boxes with no area left, unknown class names and malformed XML are reported as
issues, never raised, so one bad file among 30,000 does not stop the preparation.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VocObject:
    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False


@dataclass
class VocAnnotation:
    source: str
    width: int
    height: int
    objects: list[VocObject] = field(default_factory=list)
    filename: str | None = None


@dataclass(frozen=True)
class Issue:
    """A problem with one annotation file: ``kind`` is a stable key (for counting), ``message`` for people."""

    source: str
    kind: str  # malformed | no_size | unknown_class | empty | degenerate_box | clipped_box
    message: str


def _text(node: ET.Element | None, tag: str) -> str | None:
    if node is None:
        return None
    child = node.find(tag)
    return child.text.strip() if child is not None and child.text else None


def _number(node: ET.Element | None, tag: str) -> float | None:
    raw = _text(node, tag)
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def parse_voc(data: bytes, source: str) -> tuple[VocAnnotation | None, list[Issue]]:
    """Parse one VOC XML file; (None, [issue]) when it cannot be used at all."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return None, [Issue(source, "malformed", f"{source}: not valid XML ({exc})")]
    if root.tag != "annotation":
        return None, [Issue(source, "malformed", f"{source}: root element is <{root.tag}>, not <annotation>")]
    size = root.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    if not width or not height or width <= 0 or height <= 0:
        return None, [Issue(source, "no_size", f"{source}: <size> has no positive width/height")]
    ann = VocAnnotation(source=source, width=int(width), height=int(height), filename=_text(root, "filename"))
    issues: list[Issue] = []
    for index, obj in enumerate(root.iter("object")):
        name = _text(obj, "name")
        box = obj.find("bndbox")
        coords = [_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if not name or any(c is None for c in coords):
            issues.append(Issue(source, "malformed", f"{source}: object {index} has no name or incomplete <bndbox>"))
            continue
        xmin, ymin, xmax, ymax = (float(c) for c in coords)  # type: ignore[arg-type]
        ann.objects.append(VocObject(name, xmin, ymin, xmax, ymax, _text(obj, "difficult") == "1"))
    return ann, issues


def to_yolo_lines(ann: VocAnnotation, class_index: dict[str, int]) -> tuple[list[str], list[Issue]]:
    """YOLO lines for ``ann`` with classes numbered by ``class_index``; problems reported as issues."""
    lines: list[str] = []
    issues: list[Issue] = []
    w, h = ann.width, ann.height
    for obj in ann.objects:
        if obj.name not in class_index:
            issues.append(Issue(ann.source, "unknown_class",
                                f"{ann.source}: class {obj.name!r} is not in the class list; box skipped"))
            continue
        x0, x1 = sorted((min(max(obj.xmin, 0.0), w), min(max(obj.xmax, 0.0), w)))
        y0, y1 = sorted((min(max(obj.ymin, 0.0), h), min(max(obj.ymax, 0.0), h)))
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            issues.append(Issue(ann.source, "degenerate_box",
                                f"{ann.source}: {obj.name} box ({obj.xmin:g},{obj.ymin:g},{obj.xmax:g},{obj.ymax:g}) "
                                f"has no area inside the {w}x{h} image; skipped"))
            continue
        if (x0, x1, y0, y1) != (obj.xmin, obj.xmax, obj.ymin, obj.ymax):
            issues.append(Issue(ann.source, "clipped_box", f"{ann.source}: {obj.name} box clipped to the image"))
        cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
        bw, bh = (x1 - x0) / w, (y1 - y0) / h
        lines.append(f"{class_index[obj.name]} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    if not ann.objects:
        issues.append(Issue(ann.source, "empty", f"{ann.source}: no objects (kept as a background image)"))
    return lines, issues


def check_yolo_lines(text: str, classes: int, source: str) -> tuple[list[str], list[Issue]]:
    """Valid lines of an existing YOLO label file (class in range, 4 coordinates in [0, 1])."""
    good: list[str] = []
    issues: list[Issue] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        try:
            cls = int(parts[0])
            coords = [float(p) for p in parts[1:]]
        except ValueError:
            issues.append(Issue(source, "malformed", f"{source} line {number}: not numbers: {raw.strip()!r}"))
            continue
        if len(coords) != 4 or not 0 <= cls < classes:
            issues.append(Issue(source, "malformed" if len(coords) != 4 else "unknown_class",
                                f"{source} line {number}: expected '<class 0..{classes - 1}> x y w h', got {raw.strip()!r}"))
            continue
        if not all(0.0 <= c <= 1.0 for c in coords) or coords[2] <= 0 or coords[3] <= 0:
            issues.append(Issue(source, "degenerate_box", f"{source} line {number}: box outside [0, 1]: {raw.strip()!r}"))
            continue
        good.append(raw.strip())
    return good, issues
