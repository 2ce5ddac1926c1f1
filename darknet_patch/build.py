"""Build darknet (patch, ``make``, check the binary) and cache the binary + build log in the job's store.

After a disconnect the VM is blank; recompiling darknet with CUDA takes minutes. The binary is cached under a
key = sha256 of (source commit, fork, patch set, flags, CUDA version, GPU arch): a resume with the same key
restores it in seconds; any difference rebuilds. A restored or built binary is checked before use: it must be
executable and print darknet's usage line when run without arguments.

Cache layout in the store (``build.json`` is written last, so a half-saved entry is never restored)::

    darknet-build/<key>/darknet      the binary
    darknet-build/<key>/build.log    make's output
    darknet-build/<key>/build.json   {"key": ..., "size": ..., "sha256": ..., "describe": ...}
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from checkpoints.store import CheckpointStore
from darknet_patch.fork import Fork, detect_fork, source_revision
from darknet_patch.makefile import BuildFlags
from darknet_patch.source import PATCH_SET_VERSION, apply_patches, patch_names, patched_view
from orchestrator.core.errors import BuildError, StorageError
from orchestrator.core.logs import get_logger, progress_bar
from orchestrator.core.process import SET_DEATH_SIGNAL  # the PR_SET_PDEATHSIG setter ManagedProcess uses

CACHE_PREFIX = "darknet-build"
_CHECK_TIMEOUT = 30.0
_LOG_TAIL_LINES = 30

log = get_logger(__name__)


@dataclass(frozen=True)
class BuildKey:
    source_revision: str
    fork: str
    patches: tuple[str, ...]
    flags: str
    cuda_version: str
    gpu_arch: str

    @classmethod
    def for_build(cls, source: Path, fork: Fork, flags: BuildFlags) -> BuildKey:
        return cls(
            source_revision=source_revision(source, patched_view(fork, flags)),
            fork=fork.value,
            patches=tuple(f"{name}@{PATCH_SET_VERSION}" for name in patch_names(fork, flags)),
            flags=flags.describe(),
            cuda_version=flags.cuda_version or "none",
            gpu_arch=flags.compute_capability or "none",
        )

    def digest(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


@dataclass(frozen=True)
class BuiltDarknet:
    binary: Path
    build_log: Path
    key: str
    fork: Fork
    from_cache: bool


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def check_binary(binary: Path) -> None:
    """Make ``binary`` executable and check it runs as darknet (prints its usage line); BuildError if not."""
    if not binary.is_file():
        raise BuildError(f"darknet binary {binary} does not exist")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    try:
        proc = subprocess.run(
            [str(binary)], capture_output=True, text=True, errors="replace", timeout=_CHECK_TIMEOUT,
            cwd=binary.parent, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildError(f"darknet binary {binary} cannot run: {exc}") from exc
    output = proc.stdout + proc.stderr
    if "usage" not in output.lower():
        raise BuildError(
            f"darknet binary {binary} did not print its usage line (exit {proc.returncode}): "
            f"{output.strip()[-400:] or 'no output'}; a missing shared library (libcudart, libopencv) "
            "usually means the build environment changed - rebuild"
        )


#: A compiler line of darknet's Makefiles (both forks): ``gcc ... -c ./src/gemm.c -o obj/gemm.o``.
_COMPILE_LINE = re.compile(rb"\s-c\s+\S+\.(?:c|cpp|cu)\b")


def _source_files(source: Path) -> int:
    return sum(1 for p in (source / "src").glob("*") if p.suffix in (".c", ".cpp", ".cu"))


def count_compiled(log: bytes) -> int:
    """How many source files make has started compiling, from its output."""
    return len(_COMPILE_LINE.findall(log))


def _follow_build(proc: subprocess.Popen[bytes], build_log: Path, total: int, poll: float = 0.5) -> None:
    """Wait for make, showing a progress bar of the files compiled so far (a build takes minutes)."""
    bar = progress_bar(total or None, "building darknet", "file")
    try:
        while True:
            done = proc.poll() is not None
            compiled = count_compiled(build_log.read_bytes())
            if bar.total is not None and compiled > bar.total:
                bar.total = compiled
            bar.update(compiled - bar.n)
            if done:
                return
            time.sleep(poll)
    except BaseException:  # a second Ctrl-C: as subprocess.run did, make goes with us
        proc.kill()
        proc.wait()
        raise
    finally:
        bar.close()


def run_make(source: Path, build_log: Path, jobs: int | None = None) -> Path:
    """``make -jN`` in ``source`` (argv list, no shell), output to ``build_log``; returns the binary path."""
    jobs = jobs or os.cpu_count() or 1
    build_log.parent.mkdir(parents=True, exist_ok=True)
    argv = ["make", f"-j{jobs}"]
    with open(build_log, "wb") as out:
        out.write(f"$ {' '.join(argv)}  (in {source})\n".encode())
        out.flush()
        try:
            # make dies with us (kill -9 mid-build): an orphan make must not keep writing into the tree that
            # the re-run deletes and copies again. Its own session: a Ctrl-C asks the job to stop, which it
            # does once the build is done (and cached), instead of killing make and failing the job
            proc = subprocess.Popen(argv, cwd=source, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=SET_DEATH_SIGNAL,  # noqa: PLW1509 - prctl only, as before
                                    start_new_session=True)
        except OSError as exc:
            raise BuildError(f"cannot run make in {source}: {exc}; install build-essential") from exc
        _follow_build(proc, build_log, _source_files(source))
    if proc.returncode != 0:
        raise BuildError(
            f"make failed in {source} (exit {proc.returncode}); full log: {build_log}\n{_tail(build_log)}"
        )
    binary = source / "darknet"
    if not binary.is_file():
        raise BuildError(f"make succeeded in {source} but produced no ./darknet; full log: {build_log}")
    return binary


class BuildCache:
    """Binary + build log of darknet builds in a store, by build key."""

    def __init__(self, store: CheckpointStore, prefix: str = CACHE_PREFIX) -> None:
        self.store = store
        self.prefix = prefix

    def _key(self, digest: str, name: str) -> str:
        return f"{self.prefix}/{digest}/{name}"

    def restore(self, digest: str, dest: Path) -> Path | None:
        """The cached binary copied into folder ``dest`` and checked, or None on a miss or a bad entry."""
        try:
            if self.store.stat(self._key(digest, "build.json")) is None:
                return None
            record = json.loads(self.store.read_bytes(self._key(digest, "build.json")))
            dest.mkdir(parents=True, exist_ok=True)
            binary = dest / "darknet"
            self.store.download(self._key(digest, "darknet"), binary)
            if self.store.stat(self._key(digest, "build.log")) is not None:
                self.store.download(self._key(digest, "build.log"), dest / "build.log")
        except (StorageError, ValueError, OSError) as exc:
            log.warning("darknet build cache entry %s unusable (%s); rebuilding", digest[:12], exc)
            return None
        if binary.stat().st_size != record.get("size") or _sha256(binary) != record.get("sha256"):
            log.warning("cached darknet binary %s does not match its record; rebuilding", digest[:12])
            return None
        try:
            check_binary(binary)
        except BuildError as exc:
            log.warning("cached darknet binary %s does not run here (%s); rebuilding", digest[:12], exc)
            return None
        return binary

    def save(self, digest: str, binary: Path, build_log: Path, describe: str = "") -> None:
        self.store.upload(binary, self._key(digest, "darknet"))
        if build_log.is_file():
            self.store.upload(build_log, self._key(digest, "build.log"))
        record = {"key": digest, "size": binary.stat().st_size, "sha256": _sha256(binary), "describe": describe}
        self.store.write_bytes(self._key(digest, "build.json"), json.dumps(record, indent=2).encode())


def ensure_darknet(
    source: Path, flags: BuildFlags, work: Path, cache: BuildCache | None = None, jobs: int | None = None
) -> BuiltDarknet:
    """A checked darknet binary for ``source`` + ``flags`` in ``work``: from the cache, else patched and built."""
    source = Path(source)
    fork = detect_fork(source)
    key = BuildKey.for_build(source, fork, flags)
    digest = key.digest()
    bin_dir = work / "bin"
    if cache is not None:
        restored = cache.restore(digest, bin_dir)
        if restored is not None:
            log.info("darknet restored from build cache %s (%s)", digest[:12], key.flags)
            return BuiltDarknet(restored, bin_dir / "build.log", digest, fork, from_cache=True)
    apply_patches(source, fork, flags)
    build_log = work / "build.log"
    built = run_make(source, build_log, jobs=jobs)
    check_binary(built)
    bin_dir.mkdir(parents=True, exist_ok=True)
    binary = bin_dir / "darknet"
    shutil.copy2(built, binary)
    shutil.copy2(build_log, bin_dir / "build.log")
    if cache is not None:
        cache.save(digest, binary, build_log, describe=f"{fork.value} {key.source_revision} {key.flags}")
    return BuiltDarknet(binary, bin_dir / "build.log", digest, fork, from_cache=False)
