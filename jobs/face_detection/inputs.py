"""Finding a job's inputs (folders, files, globs) and giving each a stable, unique output name."""

from __future__ import annotations

import glob
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
