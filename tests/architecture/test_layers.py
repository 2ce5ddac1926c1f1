"""The import graph points one way: core <- checkpoints <- darknet_patch <- jobs <- application.

``orchestrator.core`` (errors, paths, spec, state, journal, lease, session, ...) imports none of our other
packages; ``orchestrator.app`` (CLI, runner, job files, status) and the public API in ``orchestrator`` sit on
top. Every import counts: module level, under ``TYPE_CHECKING`` and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "checkpoints", "darknet_patch", "jobs")

#: layer -> the layers it may import (itself included)
ALLOWED = {
    "core": {"core"},
    "checkpoints": {"core", "checkpoints"},
    "darknet_patch": {"core", "checkpoints", "darknet_patch"},
    "jobs": {"core", "checkpoints", "darknet_patch", "jobs"},
    "app": {"core", "checkpoints", "darknet_patch", "jobs", "app"},
    "api": {"core", "checkpoints", "darknet_patch", "jobs", "app", "api"},
}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "orchestrator":
        if len(parts) == 1 or parts[1] in ("__main__", "api"):
            return "api"
        return parts[1] if parts[1] in ("core", "app") else "api"
    return parts[0] if parts[0] in PACKAGES else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> dict[str, int]:
    """Our modules that ``path`` imports, with the line of the first import."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if layer_of(name) is not None:
                found.setdefault(name, node.lineno)
    return found


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_every_import_points_down_the_layers() -> None:
    wrong = []
    for path in source_files():
        here = layer_of(module_name(path))
        assert here is not None
        for target, line in imports_of(path).items():
            there = layer_of(target)
            if there not in ALLOWED[here]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {here} imports {target} ({there})")
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    known = {module_name(p): p for p in source_files()}

    def resolve(target: str) -> str | None:  # "a.b.C" imported as a module or a name in a module
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    graph = {m: {r for t in imports_of(p) if (r := resolve(t)) and r != m and not m.startswith(r + ".")}
             for m, p in known.items()}
    # package __init__ files re-export lazily (PEP 562); a package importing its own sub-modules is no cycle
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_layer_rules_catch_a_core_module_importing_upwards(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from checkpoints.store import CheckpointStore\nimport orchestrator.app.runner\n")
    found = imports_of(bad)
    assert {layer_of(t) for t in found} == {"checkpoints", "app"}
    assert not {layer_of(t) for t in found} <= ALLOWED["core"]
