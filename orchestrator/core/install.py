"""The distribution's name on PyPI and the install line for an extra.

PyPI's ``orchestrator`` is somebody else's project; ours is published as :data:`DISTRIBUTION` (the import
package and ``python -m orchestrator`` keep their name).
"""

from __future__ import annotations

DISTRIBUTION = "gpu-orchestrator"


def install_hint(extra: str | None = None) -> str:
    """``pip install 'gpu-orchestrator[drive]'`` (or without an extra)."""
    return f"pip install '{DISTRIBUTION}[{extra}]'" if extra else f"pip install {DISTRIBUTION}"
