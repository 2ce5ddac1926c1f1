"""Which GPUs darknet trains on: ``train.gpus`` (``auto`` or a list) -> darknet's ``-gpus 0,1``.

A pure decision on the setting, the number of visible GPUs and the iteration darknet resumes from. ``auto``
follows AlexeyAB's advice for several GPUs: the first ~1000 iterations on one GPU, then on all of them. The
decision is taken again at every launch, so it holds across sessions and on a machine with another GPU count
(a resume from iteration 1200 on a two-GPU machine starts on both; one from 400 starts on one and switches at
1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

#: AlexeyAB: "train it first on 1 GPU for like 1000 iterations", then on several.
WARMUP_ITERATIONS = 1000


@dataclass(frozen=True)
class GpuChoice:
    """The GPUs of this launch, and where (if anywhere) darknet is relaunched on more of them."""

    gpus: tuple[int, ...]
    visible: int
    switch_at: int | None = None  # relaunch at this iteration on ``later``
    later: tuple[int, ...] = ()
    note: str = ""

    def flag(self) -> list[str]:
        """darknet's ``-gpus`` argument (none on a CPU machine: darknet built without GPU ignores it anyway)."""
        return ["-gpus", ",".join(str(i) for i in self.gpus)] if self.gpus else []

    def describe(self) -> str:
        """For the log and ``status``: ``0,1``, ``0 (then 0,1 from iteration 1000)`` or ``none (CPU)``."""
        if not self.gpus:
            return "none (CPU)"
        text = ",".join(str(i) for i in self.gpus)
        if self.switch_at is not None:
            text += f" (then {','.join(str(i) for i in self.later)} from iteration {self.switch_at})"
        return text


def choose_gpus(setting: Literal["auto"] | Sequence[int], visible: int, iteration: int,
                warmup: int = WARMUP_ITERATIONS) -> GpuChoice:
    """The GPUs for a darknet launch resuming at ``iteration`` on a machine with ``visible`` GPUs.

    An explicit list is used as given, less the GPUs this machine does not have (noted, not an error: the job
    was perhaps started on a bigger machine).
    """
    if setting == "auto":
        wanted = tuple(range(visible))
        note = ""
    else:
        wanted = tuple(dict.fromkeys(i for i in setting if 0 <= i < visible))
        missing = [i for i in setting if not 0 <= i < visible]
        note = (f"train.gpus {list(setting)}: GPU {', '.join(map(str, missing))} not on this machine "
                f"({visible} visible); using {list(wanted) or 'the CPU'}") if missing else ""
    if setting == "auto" and len(wanted) > 1 and iteration < warmup:
        return GpuChoice(gpus=wanted[:1], visible=visible, switch_at=warmup, later=wanted,
                         note=f"the first {warmup} iterations on one GPU (AlexeyAB's advice), then on {len(wanted)}")
    return GpuChoice(gpus=wanted, visible=visible, note=note)
