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
holds and finishes; a re-run of a finished pack writes nothing. An archive is one stream written under a temp
name (DEST is never half written) with a checkpoint every ``CHECKPOINT_FILES`` files or ``CHECKPOINT_BYTES``
bytes: the part file fsynced and ``.DEST.pack-state.json`` saved atomically (offset, members done, their zip
entries or the gzip CRC). A re-run after ``kill -9`` cuts the part back to the checkpoint and goes on, giving
the same bytes as an uninterrupted run; a finished one whose manifest (``DEST.manifest.json`` beside it) matches
the source is left alone.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
import struct
import tarfile
import zipfile
import zlib
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

log = logging.getLogger(__name__)


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
#: an archive pack checkpoints after this many files or bytes (whichever comes first): what a kill -9 can cost
CHECKPOINT_FILES = 2000
CHECKPOINT_BYTES = 256 << 20
_STATE = ".pack-state.json"


def _plan_signature(plan: list[PackedFile], fmt: str, files_per_folder: int, every: tuple[int, int]) -> str:
    """What an interrupted archive must have been packing to be continued: every planned file with its source's
    size and mtime, the format, the layout and the checkpoint spacing (which shapes a .tar.gz's bytes)."""
    digest = hashlib.sha256(json.dumps([fmt, files_per_folder, list(every)]).encode())
    for item in plan:
        st = item.source.stat()
        digest.update(f"{item.dest}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _zipinfo_to_json(info: zipfile.ZipInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for slot in zipfile.ZipInfo.__slots__:
        value = getattr(info, slot, None)
        out[slot] = {"hex": value.hex()} if isinstance(value, bytes) else list(value) if isinstance(
            value, tuple) else value
    return out


def _zipinfo_from_json(doc: dict[str, Any]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo.__new__(zipfile.ZipInfo)
    for slot in zipfile.ZipInfo.__slots__:
        value = doc.get(slot)
        if isinstance(value, dict) and "hex" in value:
            value = bytes.fromhex(value["hex"])
        elif isinstance(value, list):
            value = tuple(value)
        setattr(info, slot, value)
    return info


def _pack_archive(plan: list[PackedFile], samples: int, dest: Path, files_per_folder: int, fmt: str,
                  every: tuple[int, int] = (CHECKPOINT_FILES, CHECKPOINT_BYTES)) -> PackReport:
    """Stream the plan into ``.DEST.pack-part``; after every ``every`` files/bytes the part is fsynced and the
    state (offset, members done, their zip entries or gzip CRC) saved atomically beside it, so a re-run after
    ``kill -9`` cuts the part back to the last checkpoint and goes on. The bytes are the same either way."""
    sizes = {f.dest: f.source.stat().st_size for f in plan}
    sidecar = dest.with_name(dest.name + ".manifest.json")
    tmp = dest.with_name(f".{dest.name}{_PART}")
    state_path = dest.with_name(f".{dest.name}{_STATE}")
    folders = len({posixpath.dirname(p) for p in sizes if "/" in p})
    if dest.is_file() and sidecar.is_file():
        try:
            recorded = {e["path"]: e["size"] for e in json.loads(sidecar.read_text())["files"]}
        except (ValueError, KeyError, TypeError):
            recorded = {}
        if recorded == sizes:
            state_path.unlink(missing_ok=True)
            return PackReport(dest, samples, len(plan), folders, 0, sum(sizes.values()))
    dest.parent.mkdir(parents=True, exist_ok=True)
    signature = _plan_signature(plan, fmt, files_per_folder, every)
    state = _read_state(state_path, signature, tmp)
    top = dest.name[: -len(".tar.gz")] if dest.name.lower().endswith(".tar.gz") else dest.stem
    done = int(state["done"]) if state else 0
    entries: list[tuple[str, int, str]] = [tuple(e) for e in state["entries"]] if state else []  # type: ignore[misc]
    if state is None:
        tmp.unlink(missing_ok=True)
    bar = progress_bar(len(plan), "pack", "file") if len(plan) >= 200 else None
    if bar is not None and done:
        bar.update(done)
    with open(tmp, "r+b" if state else "wb") as raw:
        if state:
            raw.truncate(int(state["offset"]))
            raw.seek(int(state["offset"]))
        writer = _ArchiveWriter(raw, fmt, state)
        batch_files = batch_bytes = 0
        try:
            for item in plan[done:]:
                with open(item.source, "rb") as src:
                    entries.append((item.dest, *writer.add(f"{top}/{item.dest}", src, sizes[item.dest])))
                done += 1
                batch_files, batch_bytes = batch_files + 1, batch_bytes + sizes[item.dest]
                if bar is not None:
                    bar.update(1)
                if (batch_files >= every[0] or batch_bytes >= every[1]) and done < len(plan):
                    _save_state(state_path, raw, writer, signature, done, entries)
                    batch_files = batch_bytes = 0
        except BaseException:
            writer.abandon()  # Ctrl-C or a read error: the part stays as it is; the next run resumes it
            raise
        manifest = _manifest(entries, files_per_folder, samples)
        writer.add_bytes(f"{top}/{MANIFEST}", manifest)
        writer.close()
        raw.flush()
        os.fsync(raw.fileno())
    if bar is not None:
        bar.close()
    atomic_write_bytes(sidecar, manifest)  # before the rename: a finished DEST always has its manifest beside it
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    state_path.unlink(missing_ok=True)
    written = len(plan) - (int(state["done"]) if state else 0) + 1
    return PackReport(dest, samples, len(plan), folders, written, sum(sizes.values()))


def _read_state(path: Path, signature: str, part: Path) -> dict[str, Any] | None:
    """The checkpoint of an interrupted pack of this same plan whose part file reaches its offset, else None."""
    try:
        state = json.loads(path.read_text())
        usable = (state.get("signature") == signature and part.is_file()
                  and part.stat().st_size >= int(state["offset"]) and int(state["done"]) == len(state["entries"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        usable = False
    if not usable:
        log.info("dataset pack: %s is not a checkpoint of this pack (other source or settings); starting over",
                 path)
        return None
    log.info("dataset pack: continuing %s after %d files", part, state["done"])
    return dict(state)


def _save_state(path: Path, raw: BinaryIO, writer: _ArchiveWriter, signature: str, done: int,
                entries: list[tuple[str, int, str]]) -> None:
    writer.checkpoint()
    raw.flush()
    os.fsync(raw.fileno())
    doc = {"format": "orchestrator-pack-state/1", "signature": signature, "offset": raw.tell(), "done": done,
           "entries": [list(e) for e in entries], **writer.state()}
    atomic_write_bytes(path, json.dumps(doc, separators=(",", ":")).encode())


class _GzipSegments:
    """A gzip member written as raw deflate segments, each from a fresh compressor ended by a full flush: a
    checkpoint is a byte boundary, and a new process continues the one member from the saved CRC and size. One
    member (not one per checkpoint), so every reader, Python's streaming ``tarfile`` included, reads it whole."""

    def __init__(self, raw: BinaryIO, crc: int = 0, size: int = 0, fresh: bool = True, level: int = 6) -> None:
        self.raw, self.crc, self.size, self.level = raw, crc, size, level
        if fresh:  # the gzip header: no name, mtime 0 (deterministic), OS unknown
            raw.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self.raw.write(self._deflate.compress(data))
        return len(data)

    def tell(self) -> int:
        return self.size

    def checkpoint(self) -> None:
        self.raw.write(self._deflate.flush(zlib.Z_FULL_FLUSH))
        self._deflate = zlib.compressobj(self.level, zlib.DEFLATED, -zlib.MAX_WBITS)

    def close(self) -> None:
        self.raw.write(self._deflate.flush(zlib.Z_FINISH))
        self.raw.write(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))


class _ArchiveWriter:
    """Members streamed into a zip (stored: images are compressed already) or a tar (optionally gzipped), from
    the start or from a saved checkpoint (``state``)."""

    def __init__(self, raw: BinaryIO, fmt: str, state: dict[str, Any] | None = None) -> None:
        self.zip: zipfile.ZipFile | None = None
        self.tar: tarfile.TarFile | None = None
        self.gz: _GzipSegments | None = None
        if fmt == "zip":
            self.zip = zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED, allowZip64=True)
            for doc in (state or {}).get("zip", []):  # the members before the checkpoint, for the central directory
                info = _zipinfo_from_json(doc)
                self.zip.filelist.append(info)
                self.zip.NameToInfo[info.filename] = info
            return
        out: Any = raw
        if fmt == "tar.gz":
            gz = (state or {}).get("gzip")
            self.gz = out = _GzipSegments(raw, int(gz["crc"]), int(gz["size"]), fresh=False) if gz \
                else _GzipSegments(raw)
        self.tar = tarfile.open(fileobj=out, mode="w")  # noqa: SIM115 - closed in close()
        if state and fmt == "tar":
            self.tar.offset = int(state["offset"])

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

    def checkpoint(self) -> None:
        if self.gz is not None:
            self.gz.checkpoint()

    def state(self) -> dict[str, Any]:
        """What a new process needs to continue after :meth:`checkpoint` (besides the offset)."""
        if self.zip is not None:
            return {"zip": [_zipinfo_to_json(info) for info in self.zip.filelist]}
        if self.gz is not None:
            return {"gzip": {"crc": self.gz.crc, "size": self.gz.size}}
        return {}

    def abandon(self) -> None:
        """Stop without finishing the archive (no central directory, no end blocks): the part is resumed later."""
        if self.zip is not None:
            self.zip.fp = None  # ZipFile.close (and its __del__) then writes nothing

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()
            return
        assert self.tar is not None
        self.tar.close()
        if self.gz is not None:
            self.gz.close()


class _HashingReader:
    def __init__(self, src: BinaryIO, digest: Any) -> None:
        self.src, self.digest = src, digest

    def read(self, size: int = -1) -> bytes:
        data = self.src.read(size)
        self.digest.update(data)
        return data


def pack_dataset(src: Path, dest: Path, files_per_folder: int = 1000,
                 checkpoint_every: tuple[int, int] = (CHECKPOINT_FILES, CHECKPOINT_BYTES)) -> PackReport:
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
    return _pack_archive(plan, samples, dest, files_per_folder, fmt, checkpoint_every)
