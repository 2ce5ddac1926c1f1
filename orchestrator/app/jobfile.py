"""Loading ``job.yaml``: YAML with line numbers, validation against every job kind, readable errors.

Errors name the file, the line, the YAML path of the field (``train.max_batches``), what was expected and what
was found; unknown keys list the valid ones. Loading never writes anything.
"""

from __future__ import annotations

import functools
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Discriminator, Tag, TypeAdapter, ValidationError

from jobs.registry import REGISTRY
from orchestrator.core.errors import ConfigError
from orchestrator.core.spec import JobSpecBase

Loc = tuple[Any, ...]


def _kind_of(value: Any) -> Any:
    return value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)


@functools.lru_cache(maxsize=4)
def _adapter_for(version: int) -> TypeAdapter[Any]:
    members = tuple(Annotated[entry.spec_model(), Tag(entry.name)] for entry in REGISTRY)
    union = members[0] if len(members) == 1 else Union[members]  # noqa: UP007 - runtime union of models
    return TypeAdapter(Annotated[union, Discriminator(_kind_of)])  # type: ignore[arg-type]


def job_spec_adapter() -> TypeAdapter[Any]:
    """Validates a job file against the kind its ``kind:`` names; follows kinds registered later."""
    return _adapter_for(REGISTRY.version)


def json_schema() -> dict[str, Any]:
    """JSON Schema of job files: one branch per registered kind, each with its ``kind`` constant."""
    schema = job_spec_adapter().json_schema()
    definitions = schema.get("$defs", {})
    branches = []
    for entry in REGISTRY:
        model = entry.spec_model()
        branch = definitions.get(model.__name__)
        if branch is None and schema.get("title") == model.__name__:
            branch = schema
        if branch is not None:
            branch.setdefault("properties", {})["kind"] = {"const": entry.name, "title": "Kind"}
        branches.append({"$ref": f"#/$defs/{model.__name__}"})
    if len(branches) > 1:
        schema["oneOf"] = branches
        schema.pop("anyOf", None)
    schema["title"] = "orchestrator job file"
    return schema


def _line_index(node: yaml.Node, loc: Loc = (), index: dict[Loc, int] | None = None,
                duplicates: list[tuple[Loc, int]] | None = None) -> dict[Loc, int]:
    """Map each YAML path to its 1-based line; record duplicate mapping keys."""
    index = {} if index is None else index
    index.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen and duplicates is not None:
                duplicates.append((loc + (key,), key_node.start_mark.line + 1))
            seen.add(key)
            index[loc + (key,)] = key_node.start_mark.line + 1
            _line_index(value_node, loc + (key,), index, duplicates)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, loc + (i,), index, duplicates)
    return index


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model inside an annotation (unions, Optional, Annotated, list[...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _tagged(model: type[BaseModel], tag: Any) -> bool:
    return any(typing.get_args(f.annotation) == (tag,) for f in model.model_fields.values())


def walk_loc(root: type[BaseModel], loc: Loc) -> tuple[Loc, type[BaseModel] | None]:
    """Drop the tags pydantic puts in the location of tagged-union members (``store.path.x`` -> ``store.x``),
    and return the model holding the last element (to list its valid keys)."""
    clean: list[Any] = []
    models: list[type[BaseModel]] = [root]
    holder: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            clean.append(part)
            continue
        tagged = [m for m in models if _tagged(m, part)] if len(models) > 1 else []
        if tagged:
            models = tagged  # a union tag: not a key the user wrote
            holder = tagged[0]
            continue
        holder = next((m for m in models if part in m.model_fields), None)
        if holder is None:
            holder = models[0] if len(models) == 1 else None
            clean.append(part)
            models = []
            continue
        clean.append(part)
        models = _models_in(holder.model_fields[part].annotation)
    return tuple(clean), holder


def _describe(error: dict[str, Any], holder: type[BaseModel] | None) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        valid = ", ".join(holder.model_fields) if holder else "?"
        return f"unknown key; valid keys here: {valid}"
    if kind == "missing":
        return "required field is missing"
    shown = error.get("input")
    if isinstance(shown, (dict, list)):
        return msg
    text = json.dumps(shown, default=str)
    return f"{msg} (got {text[:60]})"


def parse_job_text(text: str, source: str, base_dir: Path) -> JobSpecBase:
    """Validate job-file text; ``source`` names it in errors."""
    if not text.strip():
        raise ConfigError(f"{source}: the job file is empty. A job file needs at least: name, kind "
                          f"({', '.join(REGISTRY.names())}), checkpoint_dir, and the kind's own fields.")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the job file must be a mapping of keys (name:, kind:, ...), "
                          f"found {type(data).__name__}")
    duplicates: list[tuple[Loc, int]] = []
    lines = _line_index(node, duplicates=duplicates)
    if duplicates:
        loc, line = duplicates[0]
        raise ConfigError(f"{source}:{line}: {format_loc(loc)}: key given twice")
    kind = data.get("kind")
    if kind is None:
        raise ConfigError(f"{source}: kind: required field is missing; one of: {', '.join(REGISTRY.names())}")
    if kind not in REGISTRY:
        raise ConfigError(f"{source}:{lines.get(('kind',), '?')}: kind: unknown job kind {kind!r}; "
                          f"one of: {', '.join(REGISTRY.names())}")
    try:
        return job_spec_adapter().validate_python(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        model = REGISTRY.get(kind).spec_model()
        messages = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[0] == kind:
                loc = loc[1:]  # the discriminated union puts the tag first
            loc, holder = walk_loc(model, loc)
            line_no = _line_for(loc, lines)
            where = f"{source}:{line_no}" if line_no else source
            messages.append(f"{where}: {format_loc(loc)}: {_describe(dict(error), holder)}")
        shown = messages[:12]
        if len(messages) > len(shown):
            shown.append(f"... and {len(messages) - len(shown)} more")
        raise ConfigError("invalid job file:\n  " + "\n  ".join(shown)) from None


def load_job_file(path: Path) -> JobSpecBase:
    """Read and validate a job file; raises ConfigError (exit code 2) naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: job file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a job file (job.yaml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the job file: {exc}") from None
    return parse_job_text(text, str(path), path.resolve().parent)
