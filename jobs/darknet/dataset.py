"""Prepare a detection dataset for darknet: labels, deterministic split, sharded layout, list files, obj.data.

Input: a folder in VOC layout (``*.xml`` beside each image, or ``Annotations/`` beside ``JPEGImages/``) or in
YOLO layout (``*.txt`` beside each image). Output (``out``)::

    data/00000/<image> + <image>.txt   at most ``max_files_per_folder`` files per sub-folder (Drive's mount
    data/00001/...                      errors on folders of ~7,000 files)
    train.txt, test.txt, obj.names, obj.data, prepare_report.json

Sharding is one O(n) pass over a single sorted listing (the seed re-globbed the source for every
sub-folder: O(n^2 / N)). The split is by a hash of each image's relative path, so it is the same on every
run and adding images never moves old ones between train and test. Darknet finds a label by rewriting the
image path (pjreddie: the first ``images``/``JPEGImages``/``raw`` becomes ``labels``); the output paths are
checked so that rewrite lands on the label written beside each image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from jobs.darknet.voc import Issue, check_yolo_lines, parse_voc, to_yolo_lines
from jobs.data.folders import walk_folder
from orchestrator.core.atomic import atomic_write_json, atomic_write_text
from orchestrator.core.errors import ConfigError
from orchestrator.core.logs import progress_bar

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".JPG", ".JPEG", ".PNG", ".BMP")
_REPORT_ISSUES = 200


@dataclass(frozen=True)
class Sample:
    rel: str  # path relative to the dataset root (POSIX): the split key
    image: Path
    annotation: Path | None


@dataclass
class DatasetReport:
    classes: list[str]
    train: int = 0
    test: int = 0
    folders: int = 0
    boxes: int = 0
    issues: list[Issue] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(issue.kind for issue in self.issues))


#: Datasets at least this large show a progress bar while they are prepared.
_PROGRESS_FROM = 500


def find_samples(root: Path, fmt: str) -> list[Sample]:
    """Images under ``root`` (sorted by relative path) with their annotation file, if any."""
    if fmt not in ("voc", "yolo"):
        raise ConfigError(f"dataset.format must be 'voc' or 'yolo', got {fmt!r}")
    if not root.is_dir():
        raise ConfigError(f"dataset.path {root} is not a folder")
    suffix = ".xml" if fmt == "voc" else ".txt"
    samples = []
    for dirpath, _, names in walk_folder(root):
        folder = Path(dirpath)
        present = set(names)
        for name in names:
            if not name.endswith(IMAGE_SUFFIXES):
                continue
            stem = name.rsplit(".", 1)[0]
            annotation: Path | None = folder / f"{stem}{suffix}" if f"{stem}{suffix}" in present else None
            if annotation is None and fmt == "voc" and folder.name == "JPEGImages":
                candidate = folder.parent / "Annotations" / f"{stem}.xml"
                annotation = candidate if candidate.is_file() else None
            samples.append(Sample((folder / name).relative_to(root).as_posix(), folder / name, annotation))
    return samples


def dataset_signature(root: Path) -> str:
    """sha256 over (relative path, size, mtime) of every image and annotation under ``root``: a cheap manifest
    that changes when files are added, removed or rewritten (one listing and stat per file, no reads)."""
    digest = hashlib.sha256()
    if not root.is_dir():
        return "missing"
    wanted = IMAGE_SUFFIXES + (".xml", ".txt")
    for dirpath, _, names in walk_folder(root):
        for name in names:
            if name.endswith(wanted):
                path = Path(dirpath) / name
                try:
                    st = path.stat()
                except OSError:
                    continue
                rel = path.relative_to(root).as_posix()
                digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def discover_classes(samples: Iterable[Sample]) -> list[str]:
    """Class names used in the VOC annotations, sorted (for datasets whose YAML gives no class list)."""
    names: set[str] = set()
    for sample in samples:
        if sample.annotation is not None:
            ann, _ = parse_voc(sample.annotation.read_bytes(), sample.rel)
            if ann is not None:
                names.update(obj.name for obj in ann.objects)
    return sorted(names)


def in_test_split(rel: str, test_fraction: float, seed: str) -> bool:
    """Deterministic membership of one sample in the test split."""
    digest = hashlib.sha256(f"{seed}\0{rel}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def shard_names(count: int, per_folder: int) -> list[str]:
    """Sub-folder of each of ``count`` items, in order, at most ``per_folder`` per folder: one O(n) pass."""
    if per_folder < 1:
        raise ConfigError(f"files per folder must be at least 1, got {per_folder}")
    return [f"{i // per_folder:05d}" for i in range(count)]


def darknet_label_path(image: str, fork: str) -> str:
    """Where darknet looks for the label of ``image`` (pjreddie ``fill_truth_detection``, AlexeyAB
    ``replace_image_to_label``)."""
    if fork == "pjreddie":
        out = image
        for old, new in (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"), (".jpg", ".txt"),
                         (".png", ".txt"), (".JPG", ".txt"), (".JPEG", ".txt")):
            out = out.replace(old, new, 1)
        return out
    out = image
    for old, new in (("/images/train2017/", "/labels/train2017/"), ("/images/val2017/", "/labels/val2017/"),
                     ("/JPEGImages/", "/labels/"), ("/images/train2014/", "/labels/train2014/"),
                     ("/images/val2014/", "/labels/val2014/")):
        out = out.replace(old, new, 1)
    for ext in (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP"):
        if out.endswith(ext):
            return out[: -len(ext)] + ".txt"
    return out


def check_label_path(image: Path, fork: str) -> None:
    expected = str(image.with_suffix(".txt"))
    found = darknet_label_path(str(image), fork)
    if found != expected:
        raise ConfigError(
            f"{fork} darknet would look for the label of {image} at {found}, not beside the image; "
            "choose a work folder whose path has no 'images', 'JPEGImages' or 'raw' in it, and .jpg/.png images"
        )


def _write_scratch(path: Path, data: bytes) -> None:
    """Temp file + rename, without fsync: a killed run never leaves a torn file, and scratch data on local
    disk need not survive power loss (the step re-runs). 30,000 fsyncs would dominate the preparation."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _place(src: Path, dest: Path, link: str) -> None:
    if dest.exists() and dest.stat().st_size == src.stat().st_size:
        return  # idempotent re-run
    if link == "hardlink":
        try:
            tmp = dest.with_name(dest.name + ".link-tmp")
            tmp.unlink(missing_ok=True)
            os.link(src, tmp)
            os.replace(tmp, dest)
            return
        except OSError:
            pass  # other filesystem: copy
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)


def labels_for(sample: Sample, fmt: str, class_index: dict[str, int]) -> tuple[list[str], list[Issue]]:
    if sample.annotation is None:
        return [], [Issue(sample.rel, "empty", f"{sample.rel}: no annotation file (kept as a background image)")]
    try:
        data = sample.annotation.read_bytes()
    except OSError as exc:
        return [], [Issue(sample.rel, "malformed", f"{sample.rel}: cannot read annotation: {exc}")]
    if fmt == "yolo":
        return check_yolo_lines(data.decode("utf-8", "replace"), len(class_index), sample.rel)
    ann, issues = parse_voc(data, sample.rel)
    if ann is None:
        return [], issues
    lines, more = to_yolo_lines(ann, class_index)
    return lines, issues + more


def prepare_dataset(
    root: Path,
    out: Path,
    fmt: str = "voc",
    classes: list[str] | None = None,
    *,
    test_fraction: float = 0.1,
    seed: str = "orchestrator",
    max_files_per_folder: int = 1000,
    link: str = "copy",
    fork: str = "alexeyab",
    backup: Path | None = None,
) -> DatasetReport:
    """Convert, split, shard and write the list files; returns counts and every issue found."""
    root, out = Path(root), Path(out)
    if not 0 <= test_fraction < 1:
        raise ConfigError(f"dataset.test_fraction must be in [0, 1), got {test_fraction}")
    samples = find_samples(root, fmt)
    if not samples:
        raise ConfigError(f"dataset.path {root} holds no images ({', '.join(IMAGE_SUFFIXES[:4])})")
    if classes is None:
        if fmt != "voc":
            raise ConfigError("a YOLO-layout dataset needs dataset.classes (the class names, in label order)")
        classes = discover_classes(samples)
        if not classes:
            raise ConfigError(f"no class names found in the VOC annotations under {root}; give dataset.classes")
    if len(set(classes)) != len(classes):
        raise ConfigError(f"dataset.classes has duplicates: {classes}")
    class_index = {name: i for i, name in enumerate(classes)}
    report = DatasetReport(classes=list(classes))
    data_dir = out / "data"
    per_folder = max(1, max_files_per_folder // 2)  # an image and its label per sample
    train_lines: list[str] = []
    test_lines: list[str] = []
    used: set[str] = set()
    made: set[str] = set()
    bar = progress_bar(len(samples), "dataset", "img") if len(samples) >= _PROGRESS_FROM else None
    for sample, shard in zip(samples, shard_names(len(samples), per_folder)):
        if bar is not None:
            bar.update(1)
        lines, issues = labels_for(sample, fmt, class_index)
        report.issues.extend(issues)
        report.boxes += len(lines)
        name = sample.image.name
        if f"{shard}/{name}" in used:  # same file name in two source folders
            name = hashlib.sha1(sample.rel.encode()).hexdigest()[:8] + "_" + name
        used.add(f"{shard}/{name}")
        dest = data_dir / shard / name
        check_label_path(dest, fork)
        if shard not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(shard)
        _place(sample.image, dest, link)
        _write_scratch(dest.with_suffix(".txt"), "".join(line + "\n" for line in lines).encode())
        (test_lines if in_test_split(sample.rel, test_fraction, seed) else train_lines).append(str(dest))
    if bar is not None:
        bar.close()
    if not train_lines:
        raise ConfigError(f"the split left no training images out of {len(samples)}; lower dataset.test_fraction")
    report.train, report.test = len(train_lines), len(test_lines)
    report.folders = len(made)
    write_list_files(out, classes, train_lines, test_lines or train_lines[:1], backup or out / "backup")
    atomic_write_json(out / "prepare_report.json", {
        "classes": classes, "train": report.train, "test": report.test, "folders": report.folders,
        "boxes": report.boxes, "issue_counts": report.counts(),
        "issues": [issue.message for issue in report.issues[:_REPORT_ISSUES]],
    })
    return report


def write_list_files(out: Path, classes: list[str], train: list[str], test: list[str], backup: Path) -> Path:
    """train.txt, test.txt, obj.names and obj.data (atomically); returns the obj.data path.

    Darknet strips every whitespace character from obj.data lines, so its paths must not contain any.
    """
    for path in (out, backup):
        if any(ch.isspace() for ch in str(path)):
            raise ConfigError(f"darknet cannot read paths with spaces in obj.data: {path}; use a folder without spaces")
    atomic_write_text(out / "train.txt", "".join(f"{p}\n" for p in train))
    atomic_write_text(out / "test.txt", "".join(f"{p}\n" for p in test))
    atomic_write_text(out / "obj.names", "".join(f"{c}\n" for c in classes))
    obj_data = out / "obj.data"
    atomic_write_text(obj_data, (
        f"classes = {len(classes)}\ntrain = {out / 'train.txt'}\nvalid = {out / 'test.txt'}\n"
        f"names = {out / 'obj.names'}\nbackup = {backup}\n"
    ))
    return obj_data


def copy_tree_sharded(files: list[Path], dest: Path, per_folder: int, mode: str = "copy") -> int:
    """Place ``files`` into ``dest/<shard>/`` in one pass (``mode``: copy, move or link); returns folders made."""
    if mode not in ("copy", "move", "link"):
        raise ValueError(f"mode must be copy, move or link, not {mode!r}")
    made: set[str] = set()
    for path, shard in zip(files, shard_names(len(files), per_folder)):
        if shard not in made:
            (dest / shard).mkdir(parents=True, exist_ok=True)
            made.add(shard)
        if mode == "move":
            os.replace(path, dest / shard / path.name)
        elif mode == "link":
            os.link(path, dest / shard / path.name)
        else:
            shutil.copyfile(path, dest / shard / path.name)
    return len(made)
