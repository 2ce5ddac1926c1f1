from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from checkpoints.path_store import PathStore
from darknet_patch.fork import Fork
from jobs.darknet.environment import (
    ensure_aliases,
    fetch_source,
    prepare_darknet,
    read_darknet_record,
    resolve_flags,
)
from jobs.darknet.paths import DarknetPaths
from jobs.darknet.spec import BuildSpec, DarknetSourceSpec
from orchestrator.core.errors import ConfigError
from orchestrator.core.gpu import Gpu, GpuFacts
from orchestrator.core.paths import JobPaths
from tests.darknet_patch.test_build import make_buildable_tree
from tests.jobs.darknet.test_job import fake_binary


def machine(folder: Path) -> DarknetPaths:
    return DarknetPaths(JobPaths(home=folder / "home", local=folder / "work"))


T4 = GpuFacts(gpus=(Gpu(0, "Tesla T4", "15360 MiB", "7.5"),), cuda_version="12.2")
CPU = GpuFacts()


def test_auto_flags_follow_the_machine() -> None:
    gpu = resolve_flags(BuildSpec(), T4)
    assert gpu.gpu and gpu.cudnn and gpu.compute_capability == "7.5" and gpu.cuda_version == "12.2"
    cpu = resolve_flags(BuildSpec(), CPU)
    assert not cpu.gpu and not cpu.cudnn and cpu.compute_capability is None
    forced = resolve_flags(BuildSpec(gpu=True, cudnn=False, compute_capability="8.6"), CPU)
    assert forced.gpu and not forced.cudnn and forced.compute_capability == "8.6"
    with pytest.raises(ConfigError, match="no GPU"):
        resolve_flags(BuildSpec(gpu=True), CPU)


def test_local_source_is_copied_not_patched_in_place(tmp_path: Path) -> None:
    tree = make_buildable_tree(tmp_path / "user darknet")
    (tree / "obj").mkdir()
    (tree / "obj" / "x.o").write_bytes(b"stale")
    (tree / "darknet").write_bytes(b"old binary")
    copy = fetch_source(str(tree), None, tmp_path / "work" / "darknet-src")
    assert (copy / "Makefile").read_text() == (tree / "Makefile").read_text() and not (copy / "obj").exists()
    assert not (copy / "darknet").exists() and (copy / "tools" / "darknet.sh").exists()
    with pytest.raises(ConfigError, match="neither a folder nor a git URL"):
        fetch_source("not/a/folder", None, tmp_path / "x")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_blank_vm_restores_darknet_from_the_build_cache(tmp_path: Path) -> None:
    tree = make_buildable_tree(tmp_path / "src")
    store = PathStore(tmp_path / "home" / "store")
    spec = DarknetSourceSpec(source=str(tree), build=BuildSpec(gpu=False))
    first = machine(tmp_path / "vm 1 ü")
    binary, fork = prepare_darknet(spec, first, store)
    assert fork is Fork.ALEXEYAB and read_darknet_record(first) == (binary, fork)
    assert first.darknet_record.is_file() and first.source.is_dir()
    (tree / "tools" / "darknet.sh").unlink()  # make would fail now: a second build must not happen
    second = machine(tmp_path / "vm 2")
    assert read_darknet_record(second) is None
    binary2, _ = prepare_darknet(spec, second, store)
    assert binary2.read_bytes() == binary.read_bytes()
    assert any(e.key.endswith("/build.json") for e in store.list("darknet-build/"))


def test_prebuilt_binary_is_checked(tmp_path: Path) -> None:
    fake = fake_binary(tmp_path)
    binary, fork = prepare_darknet(DarknetSourceSpec(binary=fake, fork="pjreddie"), machine(tmp_path),
                                   PathStore(tmp_path / "s"))
    assert binary == fake and fork is Fork.PJREDDIE


def test_path_aliases_are_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "drive" / "space_Colab"
    target.mkdir(parents=True)
    link = tmp_path / "WORK1"
    ensure_aliases({str(link): target})
    ensure_aliases({str(link): target})  # idempotent
    assert link.is_symlink() and link.resolve() == target.resolve()
    (tmp_path / "real").mkdir()
    with pytest.raises(ConfigError, match="not a symlink"):
        ensure_aliases({str(tmp_path / "real"): target})


def test_spec_needs_exactly_one_of_source_and_binary() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DarknetSourceSpec()
    with pytest.raises(ValueError, match="exactly one"):
        DarknetSourceSpec(source="https://github.com/AlexeyAB/darknet", binary=Path("/bin/true"))
