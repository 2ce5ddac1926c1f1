"""Darknet ``.cfg`` files: parse into sections and options (keeping line numbers), and edit them in place.

Darknet's own reader (``read_cfg`` in ``parser.c``/``option_list.c``) strips *all* whitespace from a line,
ignores empty lines and lines starting with ``#`` or ``;``, starts a section at ``[name]`` and otherwise reads
``key=value``. We read the same way, but keep each option's line number so error messages can point at the
line, and edits (class count, ``max_batches``...) rewrite only the lines they change, keeping comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.core.errors import ConfigError


@dataclass
class Section:
    """One ``[name]`` block. ``index`` counts layers from 0 (``[net]`` has index -1, as in darknet's logs)."""

    name: str
    line: int  # 1-based line number of the ``[name]`` header
    index: int
    options: dict[str, str] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict)  # key -> 1-based line number

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.options.get(key, default)

    def get_int(self, key: str, default: int) -> int:
        raw = self.options.get(key)
        if raw is None or raw == "":
            return default
        try:
            return int(float(raw)) if "." in raw else int(raw)
        except ValueError:
            raise ConfigError(
                f"cfg line {self.option_lines[key]}: [{self.name}] {key}={raw} is not a whole number"
            ) from None

    def get_float(self, key: str, default: float) -> float:
        raw = self.options.get(key)
        if raw is None or raw == "":
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"cfg line {self.option_lines[key]}: [{self.name}] {key}={raw} is not a number") from None

    def get_ints(self, key: str) -> list[int] | None:
        """A comma-separated list of integers (``layers=-1, 61``), or None when absent."""
        raw = self.options.get(key)
        if raw is None:
            return None
        try:
            return [int(part) for part in raw.split(",") if part != ""]
        except ValueError:
            raise ConfigError(
                f"cfg line {self.option_lines[key]}: [{self.name}] {key}={raw} is not a list of whole numbers"
            ) from None

    def where(self, key: str | None = None) -> str:
        """Human location: ``layer 15 [convolutional] (line 120)``."""
        line = self.option_lines.get(key, self.line) if key else self.line
        who = "[net]" if self.index < 0 else f"layer {self.index} [{self.name}]"
        return f"{who} (line {line})"


@dataclass
class DarknetCfg:
    """A parsed cfg: the ``[net]`` section, the layer sections in order, and the original lines."""

    net: Section
    layers: list[Section]
    lines: list[str]
    source: str = "<cfg>"

    @property
    def batch(self) -> int:
        return self.net.get_int("batch", 1)

    @property
    def subdivisions(self) -> int:
        return self.net.get_int("subdivisions", 1)

    @property
    def max_batches(self) -> int:
        return self.net.get_int("max_batches", 0)

    @property
    def images_per_iteration(self) -> int:
        """``(batch / subdivisions) * subdivisions`` with darknet's integer division: ``seen`` per iteration."""
        subdivisions = max(self.subdivisions, 1)
        return (self.batch // subdivisions) * subdivisions

    def text(self) -> str:
        return "".join(self.lines)


def _clean(raw: str) -> str:
    """Darknet's ``strip``: remove every whitespace character."""
    return "".join(raw.split())


def parse_cfg(text: str, source: str = "<cfg>") -> DarknetCfg:
    """Parse cfg text the way darknet reads it; raise ConfigError naming the line on malformed input."""
    lines = text.splitlines(keepends=True)
    sections: list[Section] = []
    current: Section | None = None
    for number, raw in enumerate(lines, start=1):
        line = _clean(raw)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            if not line.endswith("]"):
                raise ConfigError(f"{source} line {number}: section header {raw.strip()!r} has no closing ']'")
            current = Section(name=line[1:-1].lower(), line=number, index=len(sections) - 1)
            sections.append(current)
            continue
        if current is None:
            raise ConfigError(f"{source} line {number}: option {raw.strip()!r} appears before any [section]")
        key, eq, value = line.partition("=")
        if not eq or not key:
            raise ConfigError(f"{source} line {number}: expected key=value, got {raw.strip()!r}")
        if key not in current.options:  # darknet's option_find returns the first occurrence
            current.options[key] = value
            current.option_lines[key] = number
    if not sections or sections[0].name not in ("net", "network"):
        raise ConfigError(f"{source}: a darknet cfg must start with a [net] section")
    net, layers = sections[0], sections[1:]
    if not layers:
        raise ConfigError(f"{source}: the cfg has a [net] section but no layers")
    return DarknetCfg(net=net, layers=layers, lines=lines, source=source)


def load_cfg(path: Path) -> DarknetCfg:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read darknet cfg {path}: {exc}") from exc
    return parse_cfg(text, source=str(path))


class CfgEditor:
    """Rewrites options of a cfg line by line (comments and layout kept); ``result()`` re-parses the text."""

    def __init__(self, cfg: DarknetCfg) -> None:
        self._cfg = cfg
        self._lines = list(cfg.lines)
        self._inserts: dict[int, list[str]] = {}  # 0-based line index -> lines to insert after it

    def set(self, section: Section, key: str, value: str | float) -> None:
        text = f"{key}={value}\n"
        if key in section.option_lines:
            idx = section.option_lines[key] - 1
            old = self._lines[idx]
            indent = old[: len(old) - len(old.lstrip())]
            self._lines[idx] = indent + text
        else:
            anchor = max([section.line, *section.option_lines.values()]) - 1
            self._inserts.setdefault(anchor, []).append(text)

    def result(self) -> DarknetCfg:
        out: list[str] = []
        for idx, line in enumerate(self._lines):
            if idx in self._inserts and not line.endswith("\n"):
                line += "\n"
            out.append(line)
            out.extend(self._inserts.get(idx, []))
        return parse_cfg("".join(out), source=self._cfg.source)
