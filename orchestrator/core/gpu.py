"""What GPUs this machine has: one probe (``nvidia-smi``, ``nvcc``) for every part of the product.

The session record names the GPU, the darknet build picks its flags from the compute capability, and a job that
can use several GPUs counts them here. On a CPU-only machine (no ``nvidia-smi``) the answer is "no GPU".
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Gpu", "GpuFacts", "detect_gpus", "parse_gpu_query", "visible_gpu_count"]

_QUERY = "index,name,memory.total,compute_cap"


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory: str  # as nvidia-smi prints it, e.g. "15360 MiB"
    compute_capability: str | None


@dataclass(frozen=True)
class GpuFacts:
    """The visible GPUs and the CUDA toolkit's version (None without ``nvcc``)."""

    gpus: tuple[Gpu, ...] = ()
    cuda_version: str | None = None

    @property
    def present(self) -> bool:
        return bool(self.gpus)

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def compute_capability(self) -> str | None:
        return self.gpus[0].compute_capability if self.gpus else None

    def describe(self) -> str | None:
        """One line for the session record and the console, e.g. ``2 x Tesla T4, 15360 MiB, 7.5``."""
        if not self.gpus:
            return None
        first = self.gpus[0]
        line = ", ".join(part for part in (first.name, first.memory, first.compute_capability) if part)
        return f"{len(self.gpus)} x {line}" if len(self.gpus) > 1 else line


def parse_gpu_query(csv: str) -> tuple[Gpu, ...]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.total,compute_cap --format=csv,noheader``."""
    gpus = []
    for line in csv.splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        cc = parts[3] if re.fullmatch(r"\d+\.\d+", parts[3]) else None
        gpus.append(Gpu(index=int(parts[0]), name=parts[1], memory=parts[2], compute_capability=cc))
    return tuple(gpus)


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


@functools.cache
def detect_gpus() -> GpuFacts:
    """Ask ``nvidia-smi`` and ``nvcc`` once per process (both absent on a CPU machine)."""
    smi = shutil.which("nvidia-smi")
    gpus = parse_gpu_query(_run([smi, f"--query-gpu={_QUERY}", "--format=csv,noheader"])) if smi else ()
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    cuda = None
    if nvcc:
        match = re.search(r"release (\d+\.\d+)", _run([nvcc, "--version"]))
        cuda = match.group(1) if match else None
    return GpuFacts(gpus=gpus, cuda_version=cuda)


def visible_gpu_count(facts: GpuFacts | None = None) -> int:
    """How many GPUs a CUDA program started now sees: ``CUDA_VISIBLE_DEVICES`` narrows what ``nvidia-smi`` lists.

    Programs number the visible GPUs from 0 (``-gpus 0,1`` means the first two visible ones).
    """
    count = (facts or detect_gpus()).count
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return count
    entries = []
    for entry in (part.strip() for part in mask.split(",")):
        if not entry or entry.startswith("-"):
            break  # CUDA stops at the first invalid entry
        entries.append(entry)
    return min(len(entries), count)
