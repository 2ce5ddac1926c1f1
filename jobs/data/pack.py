"""``orchestrator dataset pack SRC DEST``: lay a dataset out the way Drive can serve it.

Two outputs, chosen by DEST's name:

- a **tree** (DEST is a folder): ``DEST/00000/``, ``DEST/00001/``, ... each holding at most ``files_per_folder``
  files, every label (``.txt``/``.xml``) beside its image under the image's stem, files at SRC's top level that
  are not samples (``classes.txt``, ``data.yaml``) at DEST's top level, and ``DEST/manifest.json`` listing every
  file with its size and sha256. Drive lists each folder without the EIO a folder of 7,000+ files gets.
- one **archive** (DEST ends in .zip, .tar, .tar.gz or .tgz) holding that same tree and manifest: one file to
  upload and one open to stage, the fastest way to bring a dataset onto a fresh VM.

Samples are paired the way the darknet kind reads them: ``x.txt``/``x.xml`` beside ``x.jpg``, VOC's
``Annotations/x.xml`` for ``JPEGImages/x.jpg``, and ``labels/.../x.txt`` for ``images/.../x.jpg``.

One O(n) pass over one sorted listing. A tree is resumable and idempotent: each file is copied under a temp name
and renamed, then recorded in ``DEST/.pack-journal.jsonl``; a re-run after ``kill -9`` skips what the journal
holds and finishes; a re-run of a finished pack writes nothing. An archive is one stream: an interrupted archive
run writes it again from the start (into a temp name, so DEST is never half written); a finished one whose
manifest (``DEST.manifest.json`` beside it) matches the source is left alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from jobs.data.archive import archive_format
from jobs.data.folders import walk_folder
from orchestrator.core.atomic import atomic_write_bytes, fsync_dir
from orchestrator.core.errors import ConfigError
from orchestrator.core.logs import progress_bar

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
LABEL_SUFFIXES = (".txt", ".xml")
MANIFEST = "manifest.json"
JOURNAL = ".pack-journal.jsonl"
_PART = ".pack-part"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackedFile:
    source: Path
    dest: str  # relative to DEST, POSIX


@dataclass(frozen=True)
class PackReport:
    dest: Path
    samples: int
    files: int
    folders: int
    copied: int  # files written by this run (0: nothing changed)
    bytes: int


# -- the plan: pure, from one listing ------------------------------------------------------------------------
def _label_candidates(rel: str) -> list[str]:
    """Where a label of the image at ``rel`` may be, in order of preference."""
    folder, name = posixpath.split(rel)
    stem = name.rsplit(".", 1)[0]
    out = [posixpath.join(folder, stem + s) for s in LABEL_SUFFIXES]
    parts = folder.split("/") if folder else []
    if parts and parts[-1] == "JPEGImages":
        out.append("/".join([*parts[:-1], "Annotations", stem + ".xml"]))
    if "images" in parts:
        i = parts.index("images")
        out.append("/".join([*parts[:i], "labels", *parts[i + 1:], stem + ".txt"]))
    return out


def plan_pack(src: Path, files_per_folder: int = 1000) -> tuple[list[PackedFile], int]:
    """Every file DEST will hold (sorted by source path) and the number of samples: one walk of ``src``."""
    if files_per_folder < 2:
        raise ConfigError(f"--files-per-folder must be at least 2 (an image and its label), got {files_per_folder}")
    if not src.is_dir():
        raise ConfigError(f"dataset pack: {src} is not a folder")
    present: set[str] = set()
    images: list[str] = []
    top_level: list[str] = []
    for dirpath, _, names in walk_folder(src):
        rel_dir = Path(dirpath).relative_to(src).as_posix()
        for name in names:
            if name.startswith(".") or name.endswith(_PART):
                continue
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            present.add(rel)
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                images.append(rel)
            elif rel_dir == ".":
                top_level.append(rel)
    labelled: set[str] = set()
    samples: list[tuple[str, list[str]]] = []
    for rel in images:
        labels = [c for c in _label_candidates(rel) if c in present and c not in labelled]
        labels = [c for i, c in enumerate(labels) if os.path.splitext(c)[1] not in
                  {os.path.splitext(x)[1] for x in labels[:i]}]  # one label per suffix
        labelled.update(labels)
        samples.append((rel, labels))
    plan = [PackedFile(src / rel, rel) for rel in top_level if rel not in labelled and rel != MANIFEST]
    shard, used, in_shard = 0, set(), 0
    for rel, labels in samples:
        count = 1 + len(labels)
        if in_shard + count > files_per_folder:
            shard, in_shard = shard + 1, 0
        in_shard += count
        folder = f"{shard:05d}"
        stem, suffix = os.path.splitext(posixpath.basename(rel))
        if f"{folder}/{stem}" in used:  # the same name in two source folders
            stem = hashlib.sha1(rel.encode()).hexdigest()[:8] + "_" + stem
        used.add(f"{folder}/{stem}")
        plan.append(PackedFile(src / rel, f"{folder}/{stem}{suffix}"))
        plan.extend(PackedFile(src / label, f"{folder}/{stem}{os.path.splitext(label)[1]}") for label in labels)
    return plan, len(samples)


def _manifest(entries: Iterable[tuple[str, int, str]], files_per_folder: int, samples: int) -> bytes:
    body = {"format": "orchestrator-dataset-pack/1", "files_per_folder": files_per_folder, "samples": samples,
            "files": [{"path": p, "size": s, "sha256": h} for p, s, h in sorted(entries)]}
    return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()


def _hash_copy(src: BinaryIO, out: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


# -- a tree ----------------------------------------------------------------------------------------------------
def _read_journal(path: Path) -> dict[str, tuple[int, str]]:
    done: dict[str, tuple[int, str]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            item = json.loads(line)
            done[item["path"]] = (int(item["size"]), str(item["sha256"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by kill -9: that file is copied again
    return done


def _foreign_file(dest: Path, planned: set[str]) -> str | None:
    """A file under ``dest`` that this pack would not write, or None."""
    for dirpath, _, names in walk_folder(dest):
        rel_dir = Path(dirpath).relative_to(dest).as_posix()
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in planned and not name.endswith(_PART):
                return rel
    return None


def _remove_leftovers(dest: Path, planned: set[str]) -> None:
    """Temp files of an interrupted run, and files an earlier pack (of another source) left that are not planned.
    Only called on a folder that is a pack (it has a manifest or a journal)."""
    for dirpath, _, names in walk_folder(dest):
        rel_dir = Path(dirpath).relative_to(dest).as_posix()
        for name in names:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if name.endswith(_PART) or (rel not in planned and name not in (MANIFEST, JOURNAL)):
                os.unlink(os.path.join(dirpath, name))


def _pack_tree(plan: list[PackedFile], samples: int, dest: Path, files_per_folder: int) -> PackReport:
    manifest_path, journal_path = dest / MANIFEST, dest / JOURNAL
    sizes = {f.dest: f.source.stat().st_size for f in plan}
    if dest.is_dir() and not (manifest_path.exists() or journal_path.exists()):
        # an interrupted pack whose journal never reached Drive holds only planned files (and temp files)
        foreign = _foreign_file(dest, set(sizes))
        if foreign is not None:
            raise ConfigError(f"dataset pack: {dest} already holds files that are not this pack's ({foreign}); "
                              "give a new folder as DEST")
    dest.mkdir(parents=True, exist_ok=True)
    done = _read_journal(journal_path)
    if not done and manifest_path.is_file():  # a finished pack: its manifest is the journal
        try:
            done = {e["path"]: (int(e["size"]), e["sha256"]) for e in json.loads(manifest_path.read_text())["files"]}
        except (ValueError, KeyError, TypeError):
            done = {}
    _remove_leftovers(dest, set(sizes))
    copied = 0
    bar = progress_bar(len(plan), "pack", "file") if len(plan) >= 200 else None
    made: set[str] = set()
    with open(journal_path, "a") as journal:
        for item in plan:
            target = dest / item.dest
            known = done.get(item.dest)
            if known is None or known[0] != sizes[item.dest] or not _has_size(target, known[0]):
                folder = posixpath.dirname(item.dest)
                if folder and folder not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(folder)
                tmp = target.with_name(f".{target.name}{_PART}")
                with open(item.source, "rb") as src, open(tmp, "wb") as out:
                    sha = _hash_copy(src, out)
                os.replace(tmp, target)
                done[item.dest] = (sizes[item.dest], sha)
                journal.write(json.dumps({"path": item.dest, "size": sizes[item.dest], "sha256": sha}) + "\n")
                journal.flush()
                copied += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    manifest = _manifest(((p, *done[p]) for p in sizes), files_per_folder, samples)
    if not (manifest_path.is_file() and manifest_path.read_bytes() == manifest):
        atomic_write_bytes(manifest_path, manifest)
        copied += 1
    journal_path.unlink(missing_ok=True)
    folders = len({posixpath.dirname(p) for p in sizes if "/" in p})
    return PackReport(dest, samples, len(plan), folders, copied, sum(sizes.values()))


def _has_size(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except OSError:
        return False


# -- one archive -----------------------------------------------------------------------------------------------
def _pack_archive(plan: list[PackedFile], samples: int, dest: Path, files_per_folder: int, fmt: str) -> PackReport:
    sizes = {f.dest: f.source.stat().st_size for f in plan}
    sidecar = dest.with_name(dest.name + ".manifest.json")
    if dest.is_file() and sidecar.is_file():
        try:
            recorded = {e["path"]: e["size"] for e in json.loads(sidecar.read_text())["files"]}
        except (ValueError, KeyError, TypeError):
            recorded = {}
        if recorded == sizes:
            return PackReport(dest, samples, len(plan), 0, 0, sum(sizes.values()))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}{_PART}")
    top = dest.name[: -len(".tar.gz")] if dest.name.lower().endswith(".tar.gz") else dest.stem
    entries: list[tuple[str, int, str]] = []
    bar = progress_bar(len(plan), "pack", "file") if len(plan) >= 200 else None
    with open(tmp, "wb") as raw:
        writer = _ArchiveWriter(raw, fmt)
        for item in plan:
            with open(item.source, "rb") as src:
                entries.append((item.dest, *writer.add(f"{top}/{item.dest}", src, sizes[item.dest])))
            if bar is not None:
                bar.update(1)
        manifest = _manifest(entries, files_per_folder, samples)
        writer.add_bytes(f"{top}/{MANIFEST}", manifest)
        writer.close()
        raw.flush()
        os.fsync(raw.fileno())
    if bar is not None:
        bar.close()
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    atomic_write_bytes(sidecar, manifest)
    folders = len({posixpath.dirname(p) for p in sizes if "/" in p})
    return PackReport(dest, samples, len(plan), folders, len(plan) + 1, sum(sizes.values()))


class _ArchiveWriter:
    """Members streamed into a zip (stored: images are compressed already) or a tar (optionally gzipped)."""

    def __init__(self, raw: BinaryIO, fmt: str) -> None:
        self.zip: zipfile.ZipFile | None = None
        self.tar: tarfile.TarFile | None = None
        if fmt == "zip":
            self.zip = zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True)
        else:
            self.tar = (tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) if fmt == "tar.gz"  # noqa: SIM115
                        else tarfile.open(fileobj=raw, mode="w"))  # noqa: SIM115 - closed in close()

    def add(self, name: str, src: BinaryIO, size: int) -> tuple[int, str]:
        if self.zip is not None:
            with self.zip.open(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), "w", force_zip64=size > 2**31) \
                    as out:
                return size, _hash_copy(src, out)  # type: ignore[arg-type]
        assert self.tar is not None
        digest = hashlib.sha256()
        reader = _HashingReader(src, digest)
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, 0
        self.tar.addfile(info, reader)  # type: ignore[arg-type]
        return size, digest.hexdigest()

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, io.BytesIO(data), len(data))

    def close(self) -> None:
        (self.zip or self.tar).close()  # type: ignore[union-attr]


class _HashingReader:
    def __init__(self, src: BinaryIO, digest: Any) -> None:
        self.src, self.digest = src, digest

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        self.digest.update(data)
        return data


def pack_dataset(src: Path, dest: Path, files_per_folder: int = 1000) -> PackReport:
    """Pack ``src`` into ``dest``: a tree when ``dest`` is a folder name, one archive for .zip/.tar/.tar.gz/.tgz."""
    src, dest = Path(src), Path(dest)
    if dest.resolve() == src.resolve() or src.resolve() in dest.resolve().parents:
        raise ConfigError(f"dataset pack: DEST {dest} must not be inside SRC {src}")
    plan, samples = plan_pack(src, files_per_folder)
    if not samples:
        raise ConfigError(f"dataset pack: no images under {src} ({', '.join(sorted(IMAGE_SUFFIXES))})")
    fmt = archive_format(dest)
    if fmt is None:
        return _pack_tree(plan, samples, dest, files_per_folder)
    return _pack_archive(plan, samples, dest, files_per_folder, fmt)
