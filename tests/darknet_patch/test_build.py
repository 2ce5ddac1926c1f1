"""Build + cache with real ``make`` on a synthetic tree whose ``all`` rule produces a darknet-like binary."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from checkpoints.memory_store import MemoryStore
from darknet_patch.build import BuildCache, BuildKey, check_binary, ensure_darknet, run_make
from darknet_patch.fork import Fork
from darknet_patch.makefile import BuildFlags, read_switch
from orchestrator.core.errors import BuildError

DATA = Path(__file__).resolve().parent / "data"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

FAKE_BINARY = '#!/bin/sh\necho "usage: ./darknet <function>" >&2\n'


def make_buildable_tree(root: Path, fork: Fork = Fork.ALEXEYAB) -> Path:
    """A tree with the fork's real Makefile head plus an ``all`` rule copying a darknet-like script."""
    (root / "src").mkdir(parents=True)
    head = (DATA / ("alexeyab.Makefile.head" if fork is Fork.ALEXEYAB else "pjreddie.Makefile.head")).read_text()
    (root / "Makefile").write_text(
        head + "\nall:\n\t@echo building GPU=$(GPU) OPENMP=$(OPENMP)\n\tcp tools/darknet.sh darknet\n"
    )
    (root / "tools").mkdir()
    (root / "tools" / "darknet.sh").write_text(FAKE_BINARY)
    (root / "src" / "dark_cuda.c").write_text("int gpu_index = 0;\n")
    (root / "src" / "yolo_v2_class.cpp").write_text("// lib\n")
    return root


def test_build_patches_runs_make_and_checks_the_binary(tmp_path: Path) -> None:
    tree = make_buildable_tree(tmp_path / "src tree ü")
    built = ensure_darknet(tree, BuildFlags(openmp=True), tmp_path / "work", jobs=1)
    assert not built.from_cache and built.fork is Fork.ALEXEYAB
    assert built.binary.stat().st_mode & stat.S_IXUSR
    log_text = built.build_log.read_text()
    assert "$ make -j1" in log_text and "building GPU=0 OPENMP=1" in log_text
    assert read_switch((tree / "Makefile").read_text(), "OPENMP") == "1"


def test_failed_make_raises_with_the_log_tail(tmp_path: Path) -> None:
    tree = make_buildable_tree(tmp_path / "t")
    (tree / "Makefile").write_text((tree / "Makefile").read_text().replace("cp tools/darknet.sh", "cp no/such"))
    with pytest.raises(BuildError, match="make failed.*exit"):
        run_make(tree, tmp_path / "build.log", jobs=1)
    assert "no/such" in (tmp_path / "build.log").read_text()


def test_binary_that_is_not_darknet_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "darknet"
    fake.write_text("#!/bin/sh\necho 'error while loading shared libraries: libcudart.so.12' >&2\nexit 127\n")
    with pytest.raises(BuildError, match="libcudart"):
        check_binary(fake)
    with pytest.raises(BuildError, match="does not exist"):
        check_binary(tmp_path / "nothing")


def test_cache_restores_without_rebuilding_and_rebuilds_on_a_new_key(tmp_path: Path) -> None:
    store = MemoryStore()
    cache = BuildCache(store)
    tree = make_buildable_tree(tmp_path / "t")
    flags = BuildFlags(gpu=True, compute_capability="7.5", cuda_version="12.2")
    first = ensure_darknet(tree, flags, tmp_path / "session1", cache=cache, jobs=1)
    assert not first.from_cache
    assert store.stat(f"darknet-build/{first.key}/build.json") is not None

    # a fresh VM: same source and flags, make must not run (break it to prove it; tools/ is not source)
    (tree / "tools" / "darknet.sh").unlink()
    second = ensure_darknet(tree, flags, tmp_path / "session2", cache=cache, jobs=1)
    assert second.from_cache and second.key == first.key
    assert second.binary.read_bytes() == first.binary.read_bytes()
    assert "building" in second.build_log.read_text()

    # another GPU -> another key -> rebuild (and the broken Makefile shows it really ran make)
    with pytest.raises(BuildError, match="make failed"):
        ensure_darknet(tree, BuildFlags(gpu=True, compute_capability="8.6", cuda_version="12.2"),
                       tmp_path / "session3", cache=cache, jobs=1)


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    store = MemoryStore()
    cache = BuildCache(store)
    tree = make_buildable_tree(tmp_path / "t")
    first = ensure_darknet(tree, BuildFlags(), tmp_path / "s1", cache=cache, jobs=1)
    store.write_bytes(f"darknet-build/{first.key}/darknet", b"#!/bin/sh\nexit 1\n")
    assert cache.restore(first.key, tmp_path / "s2" / "bin") is None
    again = ensure_darknet(tree, BuildFlags(), tmp_path / "s2", cache=cache, jobs=1)
    assert not again.from_cache


def test_half_saved_entry_without_record_is_a_miss(tmp_path: Path) -> None:
    store = MemoryStore()
    binary = tmp_path / "darknet"
    binary.write_text(FAKE_BINARY)
    store.upload(binary, "darknet-build/abc/darknet")  # build.json never written: interrupted save
    assert BuildCache(store).restore("abc", tmp_path / "out") is None


def test_key_changes_with_every_input(tmp_path: Path) -> None:
    tree = make_buildable_tree(tmp_path / "t")
    base = BuildKey.for_build(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, cudnn=True, compute_capability="7.5",
                                                              cuda_version="12.2"))
    variants = [
        BuildKey.for_build(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, cudnn=True, compute_capability="8.0",
                                                           cuda_version="12.2")),
        BuildKey.for_build(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, cudnn=True, compute_capability="7.5",
                                                           cuda_version="11.8")),
        BuildKey.for_build(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, compute_capability="7.5", cuda_version="12.2")),
        BuildKey.for_build(tree, Fork.PJREDDIE, BuildFlags(gpu=True, cudnn=True, compute_capability="7.5",
                                                           cuda_version="12.2")),
    ]
    digests = {base.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 5
    (tree / "src" / "dark_cuda.c").write_text("int gpu_index = 2;\n")
    assert BuildKey.for_build(tree, Fork.ALEXEYAB, BuildFlags(gpu=True, cudnn=True, compute_capability="7.5",
                                                              cuda_version="12.2")).digest() != base.digest()


def test_key_is_the_same_before_and_after_patching_in_place(tmp_path: Path) -> None:
    from darknet_patch.source import apply_patches

    tree = make_buildable_tree(tmp_path / "t")
    flags = BuildFlags(gpu=True, cudnn=True, compute_capability="7.5", cuda_version="12.2")
    before = BuildKey.for_build(tree, Fork.ALEXEYAB, flags).digest()
    apply_patches(tree, Fork.ALEXEYAB, flags)
    assert BuildKey.for_build(tree, Fork.ALEXEYAB, flags).digest() == before


def test_make_dies_with_the_orchestrator_killed_mid_build(tmp_path: Path) -> None:
    """kill -9 during the build: make must not live on and write into the tree the re-run copies again."""
    tools = tmp_path / "tools"
    tools.mkdir()
    pid_file = tmp_path / "make.pid"
    fake_make = tools / "make"  # a make that runs for a long time and says who it is
    fake_make.write_text(f"#!/bin/sh\necho $$ > '{pid_file}'\nexec sleep 60\n")
    fake_make.chmod(0o755)
    source = tmp_path / "src tree"
    source.mkdir()
    script = ("import sys; from pathlib import Path; from darknet_patch.build import run_make; "
              "run_make(Path(sys.argv[1]), Path(sys.argv[2]))")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    orchestrator = subprocess.Popen([sys.executable, "-c", script, str(source), str(tmp_path / "build.log")], env=env)
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.is_file() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        make_pid = int(pid_file.read_text())
        orchestrator.kill()
        orchestrator.wait(10)
        deadline = time.monotonic() + 5
        while _alive(make_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(make_pid), "make outlived the killed orchestrator"
    finally:
        orchestrator.kill()
        if pid_file.is_file() and pid_file.read_text().strip() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, just not reaped
    except FileNotFoundError:
        return False


def test_ctrl_c_does_not_kill_the_build(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole foreground group: make must finish (the job then pauses)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    started = tmp_path / "make.started"
    fake_make = tools / "make"  # a make that takes a moment, then leaves a darknet-like binary
    fake_make.write_text(f"#!/bin/sh\ntouch '{started}'\nsleep 1\nprintf '#!/bin/sh\\necho usage\\n' > darknet\n")
    fake_make.chmod(0o755)
    source = tmp_path / "src tree"
    source.mkdir()
    script = ("import signal, sys; from pathlib import Path; from darknet_patch.build import run_make; "
              "signal.signal(signal.SIGINT, lambda *a: None); "  # the runner's handler: record a stop request
              "print(run_make(Path(sys.argv[1]), Path(sys.argv[2])).name)")
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    orchestrator = subprocess.Popen([sys.executable, "-c", script, str(source), str(tmp_path / "build.log")],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)
    deadline = time.monotonic() + 20
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(orchestrator.pid, signal.SIGINT)  # what the terminal does
    out, err = orchestrator.communicate(timeout=30)
    assert orchestrator.returncode == 0, err[-2000:]
    assert out.strip() == "darknet"


def test_a_build_shows_the_files_compiled_so_far(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    for name in ("gemm.c", "conv.cpp", "blas_kernels.cu"):
        (tree / "src" / name).write_text("")
    compile_lines = "".join(f"\t@echo gcc -Iinclude/ -O3 -c ./src/{name} -o obj/x.o; sleep 0.3\n"
                            for name in ("gemm.c", "conv.cpp", "blas_kernels.cu"))
    (tree / "Makefile").write_text(f"all:\n{compile_lines}\tcp tools/darknet.sh darknet\n")
    (tree / "tools").mkdir()
    (tree / "tools" / "darknet.sh").write_text(FAKE_BINARY)
    run_make(tree, tmp_path / "build.log", jobs=1)
    err = capsys.readouterr().err
    assert "building darknet" in err and "3/3" in err
