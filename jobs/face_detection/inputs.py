"""Finding a job's inputs (folders, files, globs), giving each a stable, unique output name, and prefetching the
next ones from a slow mount onto local disk."""

from __future__ import annotations

import glob
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from jobs.face_detection.spec import FaceDetectionSpec
from jobs.face_detection.video_source import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from orchestrator.core.atomic import is_temp_name
from orchestrator.core.errors import ConfigError

MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _is_media(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES and not is_temp_name(path.name)


def discover_inputs(spec: FaceDetectionSpec) -> list[Path]:
    """Every video/image the spec names, in a stable order (each entry's matches sorted), without duplicates."""
    found: list[Path] = []
    for entry, is_glob in spec.input_patterns():
        if is_glob:
            matches = [Path(p) for p in sorted(glob.glob(entry, recursive=True))]
            found += [p for p in matches if _is_media(p)]
        else:
            path = Path(entry)
            if path.is_dir():
                found += sorted((p for p in path.rglob("*") if _is_media(p)), key=lambda p: p.as_posix())
            elif path.is_file():
                found.append(path)  # named explicitly: tried even with an unusual suffix
            else:
                raise ConfigError(f"inputs: {entry} does not exist (job {spec.name}); fix the path in the job file")
    unique: dict[str, Path] = {}
    for path in found:
        unique.setdefault(str(path.resolve()), path)
    if not unique:
        raise ConfigError(
            f"inputs: no videos or images found in {', '.join(spec.inputs)} "
            f"(looked for {', '.join(sorted(MEDIA_SUFFIXES))})"
        )
    return list(unique.values())


def output_names(paths: list[Path]) -> dict[Path, str]:
    """``clip.mp4`` -> ``clip``; inputs sharing a stem are told apart by their suffix, then by their folders."""
    by_stem: dict[str, list[Path]] = {}
    for path in paths:
        by_stem.setdefault(path.stem, []).append(path)
    names: dict[Path, str] = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            names[group[0]] = stem
            continue
        for path in group:
            name = f"{stem}_{path.suffix.lstrip('.').lower()}"
            clashes = [p for p in group if f"{stem}_{p.suffix.lstrip('.').lower()}" == name]
            if len(clashes) > 1:
                parent = "_".join(path.parent.parts[-2:]).replace("/", "_").lstrip("_")
                name = f"{parent}_{name}"
            names[path] = name
    return names


class InputPrefetcher:
    """Copies the next inputs from a slow mount to local disk while the current one is processed.

    A background thread copies the inputs in order into ``cache`` (temp name, then rename), holding at most
    ``budget_bytes`` of copies not yet released; an input larger than the whole budget, or on the same file
    system as ``cache`` (already local), is read where it is. ``take(path)`` waits for that input's copy and
    returns the path to read; ``release(path)`` deletes the copy once the input is processed. The copy holds the
    same bytes, so the pipeline's content fingerprint of an input is the same either way. ``skip(path)`` (asked
    in the background) leaves out inputs that need no reading, such as those finished in an earlier session.
    """

    def __init__(self, inputs: list[Path], cache: Path, budget_bytes: int,
                 skip: Callable[[Path], bool] = lambda path: False) -> None:
        self.cache, self.budget, self.skip = cache, budget_bytes, skip
        self._order = list(dict.fromkeys(inputs))
        self._local: dict[Path, Path | None] = {}  # done: the copy, or None (read in place)
        self._held: dict[Path, int] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if budget_bytes > 0 and self._order:
            shutil.rmtree(cache, ignore_errors=True)  # copies left by a session that was killed
            cache.mkdir(parents=True, exist_ok=True)
            self._device = os.stat(cache).st_dev
            self._thread = threading.Thread(target=self._run, name="prefetch", daemon=True)
            self._thread.start()

    def _wanted(self, path: Path) -> int | None:
        """The bytes to copy for ``path``, or None when it is read in place (or not at all: ``skip``)."""
        try:
            st = path.stat()
            if self.skip(path):
                return None
        except OSError:
            return None  # the pipeline reports the unreadable input
        if st.st_dev == self._device or st.st_size > self.budget:
            return None
        return st.st_size

    def _run(self) -> None:
        for index, path in enumerate(self._order):
            size = self._wanted(path)
            with self._cond:
                while size is not None and not self._closed and sum(self._held.values()) + size > self.budget:
                    self._cond.wait()
                if self._closed:
                    return
                if size is not None:
                    self._held[path] = size
            local = None
            if size is not None:
                local = self.cache / f"{index:05d}" / path.name  # messages about the copy name the input
                tmp = local.with_name(local.name + ".part")
                try:
                    local.parent.mkdir(exist_ok=True)
                    shutil.copyfile(path, tmp)
                    os.replace(tmp, local)
                except OSError:
                    tmp.unlink(missing_ok=True)
                    local = None
            with self._cond:
                if local is None:
                    self._held.pop(path, None)
                self._local[path] = local
                self._cond.notify_all()

    def take(self, path: Path) -> Path:
        """The file to read for ``path``: its local copy once made, or ``path`` itself."""
        if self._thread is None or path not in self._order:
            return path
        with self._cond:
            while path not in self._local and not self._closed:
                self._cond.wait()
            return self._local.get(path) or path

    def release(self, path: Path) -> None:
        """The input is processed: its copy is deleted and its bytes return to the budget."""
        with self._cond:
            local = self._local.get(path)
            self._held.pop(path, None)
            self._cond.notify_all()
        if local is not None:
            shutil.rmtree(local.parent, ignore_errors=True)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            shutil.rmtree(self.cache, ignore_errors=True)

    def __enter__(self) -> InputPrefetcher:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
