"""Building test archives (good and malicious) in the real formats, with tarfile and zipfile."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path


def tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    mode = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def tar_member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def zip_with(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None,
             devices: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
        for name in devices or []:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFCHR | 0o644) << 16
            zf.writestr(info, b"")
    return path


def archive_folder(src: Path, archive: Path, top: str = "") -> Path:
    """Pack ``src`` into ``archive`` (format from its name), members under ``top/`` when given."""
    files = sorted(p for p in src.rglob("*") if p.is_file())
    if archive.name.endswith(".zip"):
        return zip_with(archive, {f"{top}{p.relative_to(src).as_posix()}": p.read_bytes() for p in files})
    members = [(tar_member(f"{top}{p.relative_to(src).as_posix()}"), p.read_bytes()) for p in files]
    return tar_with(archive, members)


def malicious(kind: str, fmt: str, folder: Path) -> Path:
    """An archive with one good member and one ``kind`` of bad one: escape, absolute, symlink_out, device."""
    good = b"fine"
    if fmt == "zip":
        path = folder / f"{kind}.zip"
        if kind == "escape":
            return zip_with(path, {"data/a.txt": good, "data/../../evil.txt": b"pwned"})
        if kind == "absolute":
            return zip_with(path, {"data/a.txt": good, str(folder.parent / "evil.txt"): b"pwned"})
        if kind == "symlink_out":
            return zip_with(path, {"data/a.txt": good}, symlinks={"data/link": "../../.."})
        return zip_with(path, {"data/a.txt": good}, devices=["data/null"])
    path = folder / f"{kind}.tar.gz"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [(tar_member("data/a.txt"), good)]
    if kind == "escape":
        members.append((tar_member("data/../../evil.txt"), b"pwned"))
    elif kind == "absolute":
        members.append((tar_member(str(folder.parent / "evil.txt")), b"pwned"))
    elif kind == "symlink_out":
        members.append((tar_member("data/link", tarfile.SYMTYPE, "../../.."), None))
        members.append((tar_member("data/link/evil.txt"), b"pwned"))
    else:
        members.append((tar_member("data/null", tarfile.CHRTYPE), None))
    return tar_with(path, members)
