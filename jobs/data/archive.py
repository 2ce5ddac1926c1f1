"""A dataset kept as one archive (.zip, .tar, .tar.gz/.tgz), staged safely onto local disk once per machine.

One large file is how Colab users keep 15,000 images on Drive: it streams in one open, where 30,000 small files
cost a round trip each and a folder of more than ~7,000 cannot even be listed. Staging first copies the archive
to local disk in one sequential read (when the disk has room for it twice; else it extracts straight off the
mount), which measured faster than interleaving the mount's reads with 30,000 file creations (see
docs/benchmarks.md), then extracts into ``<stage>/.<signature>.partial``, renamed to ``<stage>/<signature>``
only when complete: a killed staging is redone, never half-used. The local copy is removed afterwards.

Every member is checked before anything of it is written, and the archive is refused (``ConfigError``, exit 2)
when a member

- has an absolute path (``/etc/x``, ``C:/x``) or a ``..`` that leaves the archive's folder,
- is a symbolic or hard link pointing outside the archive's folder (or at an absolute path),
- is a device file, FIFO or socket,
- would take the total past ``max_bytes`` (a zip's declared sizes are checked before any byte is written),
- or the archive has more than ``max_members`` members.

A refused archive leaves nothing behind: the partial folder is removed. The signature (size, mtime and the first
and last 64 KiB, so a rewritten archive is noticed without reading all of it) names the staged folder and goes
into the job step's fingerprint.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import ConfigError

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
_EDGE = 64 << 10
_CHUNK = 1 << 20
_READ_BUFFER = 4 << 20


def archive_format(path: Path) -> str | None:
    """``zip``, ``tar`` or ``tar.gz`` from the file name, or None when ``path`` does not name an archive."""
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".tar"):
        return "tar"
    return None


def is_archive(path: Path) -> bool:
    return archive_format(path) is not None


def archive_signature(path: Path) -> str:
    """A cheap identity of the archive's content: size, mtime and its first and last 64 KiB (one open)."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            digest = hashlib.sha256(f"{st.st_size}\0{st.st_mtime_ns}\0".encode())
            digest.update(fh.read(_EDGE))
            if st.st_size > _EDGE:
                fh.seek(max(_EDGE, st.st_size - _EDGE))
                digest.update(fh.read(_EDGE))
    except OSError as exc:
        raise ConfigError(f"dataset archive {path} cannot be read: {exc.strerror or exc}") from exc
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ExtractLimits:
    max_bytes: int = 64 << 30
    max_members: int = 2_000_000


@dataclass(frozen=True)
class StagedArchive:
    root: Path  # the extracted folder
    signature: str
    files: int
    bytes: int
    reused: bool  # already staged on this machine: nothing was read


# -- member checks -------------------------------------------------------------------------------------------
def _refuse(archive: Path, member: str, why: str) -> ConfigError:
    return ConfigError(f"dataset archive {archive} is refused: member {member!r} {why}; nothing was extracted. "
                       "Re-create the archive from the dataset folder (orchestrator dataset pack SRC DEST.zip)")


def safe_member_name(archive: Path, name: str) -> str | None:
    """The member's path relative to the extraction folder (POSIX), None for the folder itself; refuses escapes."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise _refuse(archive, name, "has an absolute path")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _refuse(archive, name, "leaves the archive's folder (..)")
    return "/".join(parts) or None


def _check_link(archive: Path, name: str, rel: str, target: str, hard: bool) -> str:
    """The link's target relative to the extraction folder; refuses a target outside it."""
    clean = target.replace("\\", "/")
    if not clean or clean.startswith("/") or re.match(r"^[A-Za-z]:", clean):
        raise _refuse(archive, name, f"is a link to an absolute path ({target})")
    joined = clean if hard else posixpath.join(posixpath.dirname(rel), clean)
    resolved = posixpath.normpath(joined)
    if resolved == ".." or resolved.startswith("../"):
        raise _refuse(archive, name, f"is a link out of the archive's folder ({target})")
    return resolved


class _Writer:
    """Writes members under ``root``, never through a link made earlier, within the size bound."""

    def __init__(self, archive: Path, root: Path, limits: ExtractLimits) -> None:
        self.archive, self.root, self.limits = archive, root, limits
        self.real_root = os.path.realpath(root)
        self.files = self.bytes = self.members = 0
        self.links = False
        self.made: set[str] = set()

    def count(self, name: str, size: int) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _refuse(self.archive, name, f"is past the limit of {self.limits.max_members} members")
        self.bytes += max(0, size)
        if self.bytes > self.limits.max_bytes:
            raise _refuse(self.archive, name, f"takes the extracted size past the bound of {self.limits.max_bytes} "
                                             "bytes (free disk space or the configured limit)")

    def _dest(self, name: str, rel: str) -> Path:
        dest = self.root / rel
        parent = posixpath.dirname(rel)
        if parent and parent not in self.made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.made.add(parent)
        if self.links:  # a link extracted earlier could redirect this write: check where it really lands
            real = os.path.realpath(dest.parent)
            if real != self.real_root and not real.startswith(self.real_root + os.sep):
                raise _refuse(self.archive, name, "would be written through a link out of the archive's folder")
            if dest.is_symlink():
                dest.unlink()
        return dest

    def directory(self, name: str, rel: str) -> None:
        self._dest(name, rel + "/x")

    def file(self, name: str, rel: str, src: IO[bytes]) -> None:
        dest = self._dest(name, rel)
        with open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        self.files += 1

    def symlink(self, name: str, rel: str, target: str) -> None:
        dest = self._dest(name, rel)
        dest.unlink(missing_ok=True)
        os.symlink(target, dest)
        self.links = True

    def hardlink(self, name: str, rel: str, target_rel: str) -> None:
        source = self.root / target_rel
        real = os.path.realpath(source)
        if not (real.startswith(self.real_root + os.sep) and os.path.isfile(real)):
            raise _refuse(self.archive, name, f"is a hard link to {target_rel}, which is not a file extracted before it")
        shutil.copyfile(real, self._dest(name, rel))
        self.files += 1


# -- formats -------------------------------------------------------------------------------------------------
def _zip_kind(info: zipfile.ZipInfo) -> int:
    mode = (info.external_attr >> 16) & 0xFFFF
    return stat.S_IFMT(mode) if info.create_system == 3 and mode else 0  # 3: unix attributes


def _extract_zip(archive: Path, writer: _Writer) -> None:
    try:
        with open(archive, "rb", buffering=_READ_BUFFER) as raw, zipfile.ZipFile(raw) as zf:
            infos = zf.infolist()
            plan: list[tuple[zipfile.ZipInfo, str, int]] = []
            for info in infos:  # every member checked before any byte is written
                rel = safe_member_name(writer.archive, info.filename)
                kind = _zip_kind(info)
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
                    raise _refuse(writer.archive, info.filename, "is a device file, FIFO or socket")
                if rel is None:
                    continue
                writer.count(info.filename, info.file_size)
                plan.append((info, rel, kind))
            for info, rel, kind in plan:
                if info.is_dir() or kind == stat.S_IFDIR:
                    writer.directory(info.filename, rel)
                elif kind == stat.S_IFLNK:
                    target = zf.read(info).decode("utf-8", "replace")
                    _check_link(writer.archive, info.filename, rel, target, hard=False)
                    writer.symlink(info.filename, rel, target)
                else:
                    with zf.open(info) as src:
                        writer.file(info.filename, rel, src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise ConfigError(f"dataset archive {writer.archive} is not a readable zip ({exc}); re-create it") from exc


def _extract_tar(archive: Path, writer: _Writer, compressed: bool) -> None:
    """A tar as one stream: each member is checked before it is written. A .tar.gz is decompressed by the
    ``gzip`` program when there is one (on another core, beside the file creation here), else by Python."""
    gunzip = shutil.which("gzip") if compressed else None
    proc: subprocess.Popen[bytes] | None = None
    try:
        with contextlib.ExitStack() as stack:
            if gunzip is not None:
                proc = subprocess.Popen([gunzip, "-dc", "--", str(archive)], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)
                stack.callback(_reap, proc)
                assert proc.stdout is not None
                tf = stack.enter_context(tarfile.open(fileobj=proc.stdout, mode="r|", bufsize=_CHUNK))
            else:
                raw = stack.enter_context(open(archive, "rb", buffering=_READ_BUFFER))
                tf = stack.enter_context(tarfile.open(fileobj=raw, mode="r|gz" if compressed else "r|",
                                                      bufsize=_CHUNK))
            for member in tf:
                _extract_tar_member(tf, member, writer)
            if proc is not None:
                assert proc.stdout is not None
                while proc.stdout.read(_CHUNK):  # the end-of-archive padding, then gzip's own verdict
                    pass
                if proc.wait() != 0:
                    error = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                    raise tarfile.ReadError(f"gzip: {error or 'exit ' + str(proc.returncode)}")
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ConfigError(f"dataset archive {writer.archive} is not a readable tar ({exc}); re-create it") from exc


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _extract_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, writer: _Writer) -> None:
    rel = safe_member_name(writer.archive, member.name)
    if member.ischr() or member.isblk() or member.isfifo() or not (
            member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(writer.archive, member.name, "is a device file, FIFO or socket")
    if rel is None:
        return
    writer.count(member.name, member.size if member.isfile() else 0)
    if member.isdir():
        writer.directory(member.name, rel)
    elif member.issym():
        _check_link(writer.archive, member.name, rel, member.linkname, hard=False)
        writer.symlink(member.name, rel, member.linkname)
    elif member.islnk():
        target = _check_link(writer.archive, member.name, rel, member.linkname, hard=True)
        writer.hardlink(member.name, rel, target)
    else:
        src = tf.extractfile(member)
        assert src is not None
        writer.file(member.name, rel, src)


def extract_archive(archive: Path, dest: Path, limits: ExtractLimits = ExtractLimits(),
                    shown_as: Path | None = None) -> tuple[int, int]:
    """Extract ``archive`` into the new folder ``dest`` (which must not exist); returns (files, bytes).

    Errors name ``shown_as`` (the user's archive, when ``archive`` is a local copy of it). On refusal or error
    ``dest`` is removed again."""
    fmt = archive_format(shown_as or archive)
    if fmt is None:
        raise ConfigError(f"{archive} is not an archive (expected {', '.join(ARCHIVE_SUFFIXES)})")
    dest.mkdir(parents=True)
    writer = _Writer(shown_as or archive, dest, limits)
    try:
        if fmt == "zip":
            _extract_zip(archive, writer)
        else:
            _extract_tar(archive, writer, compressed=fmt == "tar.gz")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return writer.files, writer.bytes


def _record(stage: Path, signature: str) -> Path:
    return stage / f"{signature}.json"


def stage_archive(archive: Path, stage: Path, limits: ExtractLimits | None = None) -> StagedArchive:
    """Extract ``archive`` under ``stage`` once per machine (skipped while its signature is staged complete).

    Other, older stagings in ``stage`` are removed once the new one is complete."""
    archive, stage = Path(archive), Path(stage)
    if not archive.is_file():
        raise ConfigError(f"dataset archive {archive} does not exist or is not a file")
    signature = archive_signature(archive)
    root, record = stage / signature, _record(stage, signature)
    if root.is_dir() and record.is_file():
        info = json.loads(record.read_text())
        return StagedArchive(root, signature, int(info["files"]), int(info["bytes"]), reused=True)
    stage.mkdir(parents=True, exist_ok=True)
    if limits is None:
        limits = ExtractLimits(max_bytes=min(ExtractLimits.max_bytes, shutil.disk_usage(stage).free))
    partial = stage / f".{signature}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    source, local_copy = archive, None
    if shutil.disk_usage(stage).free > 2 * archive.stat().st_size:
        local_copy = stage / f".{signature}.archive{''.join(archive.suffixes[-2:]) or '.zip'}"
        try:
            shutil.copyfile(archive, local_copy)
            source = local_copy
        except OSError as exc:
            local_copy.unlink(missing_ok=True)
            raise ConfigError(f"dataset archive {archive} cannot be read: {exc.strerror or exc}") from exc
    try:
        files, size = extract_archive(source, partial, limits, shown_as=archive)
    finally:
        if local_copy is not None:
            local_copy.unlink(missing_ok=True)
    os.replace(partial, root)
    atomic_write_json(record, {"archive": str(archive), "signature": signature, "files": files, "bytes": size})
    for old in _other_stagings(stage, signature):
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    return StagedArchive(root, signature, files, size, reused=False)


def _other_stagings(stage: Path, keep: str) -> Iterator[Path]:
    for entry in stage.iterdir():
        base = entry.name.lstrip(".").split(".", 1)[0]
        if re.fullmatch(r"[0-9a-f]{16}", base) and base != keep:
            yield entry
