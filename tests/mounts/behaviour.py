"""The knobs of the Drive mount double (importable without FUSE: the parent process needs no libfuse)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MountBehaviour:
    """The knobs of the mount double (all off by default: a plain, instant pass-through)."""

    open_latency_s: float = 0.0
    read_latency_s: float = 0.0
    list_base_s: float = 0.0
    list_cost_per_entry_s: float = 0.0
    list_limit: int | None = None
    lazy_uploads: bool = False
    upload_interval_s: float | None = 0.05
    seed: int = 0
