"""The machine side of a darknet job: build flags from the GPU facts, the darknet source and binary, path aliases.

Everything here rebuilds what a blank VM lacks after a disconnect; the slow part (compiling) is skipped by
the build cache in the store (``darknet_patch.build``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from checkpoints.store import CheckpointStore
from darknet_patch.build import BuildCache, check_binary, ensure_darknet
from darknet_patch.fork import Fork
from darknet_patch.makefile import BuildFlags
from jobs.darknet.paths import DarknetPaths
from jobs.darknet.spec import BuildSpec, DarknetSourceSpec
from orchestrator.core.atomic import atomic_write_json
from orchestrator.core.errors import BuildError, ConfigError
from orchestrator.core.gpu import GpuFacts, detect_gpus
from orchestrator.core.logs import get_logger

log = get_logger(__name__)


def resolve_flags(build: BuildSpec, gpu: GpuFacts) -> BuildFlags:
    """The build flags of ``build`` with ``auto`` values decided by the machine."""
    use_gpu = gpu.present if build.gpu == "auto" else build.gpu
    use_cudnn = use_gpu if build.cudnn == "auto" else build.cudnn
    if use_gpu and not (build.compute_capability or gpu.compute_capability):
        raise ConfigError("darknet.build.gpu is on but no GPU was found (nvidia-smi); set compute_capability "
                          "or gpu: false")
    return BuildFlags(
        gpu=bool(use_gpu), cudnn=bool(use_cudnn), cudnn_half=build.cudnn_half, opencv=build.opencv, avx=build.avx,
        openmp=build.openmp, libso=build.libso, debug=build.debug,
        compute_capability=(build.compute_capability or gpu.compute_capability) if use_gpu else None,
        cuda_version=(build.cuda_version or gpu.cuda_version) if use_gpu else None,
    )


def fetch_source(source: str, ref: str | None, dest: Path) -> Path:
    """A private copy of the darknet tree at ``dest`` (patched in place later): clone a URL, copy a folder."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(os.path.expanduser(source))
    if folder.is_dir():
        top = str(folder)

        def ignore(directory: str, names: list[str]) -> set[str]:
            skip = {n for n in names if n.endswith(".o")}
            if directory == top:  # build products of an earlier make in the user's folder
                skip |= {n for n in names if n in ("obj", "darknet", "libdarknet.so", "libdarknet.a")}
            return skip

        shutil.copytree(folder, dest, symlinks=True, ignore=ignore)
        return dest
    if not re.match(r"^(https?://|git@|ssh://|file://)", source):
        raise ConfigError(f"darknet.source {source!r} is neither a folder nor a git URL")
    argv = ["git", "clone", "--depth", "1", *(["--branch", ref] if ref else []), "--", source, str(dest)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"git clone of {source} failed: {proc.stderr.strip()[-500:]}")
    return dest


def prepare_darknet(spec: DarknetSourceSpec, paths: DarknetPaths, store: CheckpointStore) -> tuple[Path, Fork]:
    """A checked darknet binary and its fork; records both in ``paths.darknet_record``."""
    if spec.binary is not None:
        check_binary(spec.binary)
        fork = Fork(spec.fork if spec.fork != "auto" else "alexeyab")
        binary = spec.binary
    else:
        assert spec.source is not None
        source = fetch_source(spec.source, spec.ref, paths.source)
        flags = resolve_flags(spec.build, detect_gpus())
        built = ensure_darknet(source, flags, paths.work, cache=BuildCache(store), jobs=spec.build.jobs)
        if spec.fork != "auto" and spec.fork != built.fork.value:
            raise ConfigError(f"darknet.fork is {spec.fork} but the source is {built.fork.value}")
        binary, fork = built.binary, built.fork
        log.info("darknet %s: %s (%s)", fork.value, binary, "from the build cache" if built.from_cache else "built")
    atomic_write_json(paths.darknet_record, {"binary": str(binary), "fork": fork.value})
    return binary, fork


def read_darknet_record(paths: DarknetPaths) -> tuple[Path, Fork] | None:
    try:
        data = json.loads(paths.darknet_record.read_text())
        binary = Path(data["binary"])
        return (binary, Fork(data["fork"])) if binary.is_file() else None
    except (OSError, ValueError, KeyError):
        return None


def ensure_aliases(aliases: dict[str, Path]) -> None:
    """Symlinks such as ``/WORK1 -> /content/drive/MyDrive/space_Colab`` (same paths on laptop and Colab)."""
    for link, target in aliases.items():
        path = Path(link)
        if path.is_symlink() and Path(os.readlink(path)) == Path(target):
            continue
        if path.exists() and not path.is_symlink():
            raise ConfigError(f"path alias {link} exists and is not a symlink; remove it or choose another alias")
        try:
            if path.is_symlink():
                path.unlink()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(target, target_is_directory=True)
        except OSError as exc:
            raise ConfigError(f"cannot create path alias {link} -> {target}: {exc}") from exc
