"""Pattern-based, idempotent edits of darknet's Makefile: the build switches and the CUDA ``ARCH`` block.

Each edit finds its target by pattern (``^GPU=0``, the ``ARCH=`` assignment with its ``\\`` continuation
lines), refuses with a BuildError naming the pattern if it is absent, and is verified by reading the value
back. Applying the same flags twice gives the same text.

CUDA 11 dropped ``compute_30`` (and ``compute_32``), CUDA 12 dropped everything below ``compute_50``;
pjreddie's Makefile still lists ``compute_30``, so ``nvcc`` fails unless the ARCH block is rewritten for the
GPU actually present (``-gencode arch=compute_75,code=[sm_75,compute_75]`` for a T4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from darknet_patch.fork import Fork
from orchestrator.core.errors import BuildError

SWITCHES = ("GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "DEBUG")

_ARCH_BLOCK = re.compile(r"^ARCH\s*=(?:[^\n]*\\\n)*[^\n]*(?:\n|$)", re.MULTILINE)
_GENCODE = re.compile(r"-gencode\s+arch=compute_(\d+),code=(?:\[[^\]]*\]|\S+)")


@dataclass(frozen=True)
class BuildFlags:
    """The Makefile switches of one build (defaults: a CPU build)."""

    gpu: bool = False
    cudnn: bool = False
    cudnn_half: bool = False
    opencv: bool = False
    avx: bool = False
    openmp: bool = False
    libso: bool = False
    debug: bool = False
    compute_capability: str | None = None  # "7.5" for a T4; None: leave ARCH alone (only drop dead arches)
    cuda_version: str | None = None  # "12.2"; decides which compute_NN nvcc still accepts
    extra: dict[str, str] = field(default_factory=dict)

    def switches(self) -> dict[str, bool]:
        return {
            "GPU": self.gpu,
            "CUDNN": self.cudnn,
            "CUDNN_HALF": self.cudnn_half,
            "OPENCV": self.opencv,
            "AVX": self.avx,
            "OPENMP": self.openmp,
            "LIBSO": self.libso,
            "DEBUG": self.debug,
        }

    def describe(self) -> str:
        on = " ".join(f"{k}={int(v)}" for k, v in self.switches().items())
        return f"{on} ARCH={self.compute_capability or '-'} CUDA={self.cuda_version or '-'}"


def read_switch(text: str, name: str) -> str | None:
    match = re.search(rf"^{name}\s*=\s*(\S*)\s*$", text, re.MULTILINE)
    return match.group(1) if match else None


def set_switch(text: str, name: str, value: bool) -> str:
    """``NAME=0|1`` rewritten; BuildError if the Makefile has no such switch (and it should be turned on)."""
    pattern = re.compile(rf"^{name}\s*=\s*\S*[ \t]*$", re.MULTILINE)
    want = "1" if value else "0"
    if not pattern.search(text):
        if not value:
            return text  # nothing to turn off
        raise BuildError(
            f"the Makefile has no '{name}=' switch (pattern ^{name}=); this darknet fork cannot build with "
            f"{name}=1 - AlexeyAB/darknet supports it"
        )
    patched = pattern.sub(f"{name}={want}", text, count=1)
    if read_switch(patched, name) != want:
        raise BuildError(f"setting {name}={want} in the Makefile did not take effect")
    return patched


def gencode(compute_capability: str) -> str:
    """``"7.5"`` -> ``-gencode arch=compute_75,code=[sm_75,compute_75]``."""
    match = re.fullmatch(r"(\d+)\.(\d+)", compute_capability.strip())
    if not match:
        raise BuildError(f"compute capability {compute_capability!r} is not of the form 8.6")
    cc = match.group(1) + match.group(2)
    return f"-gencode arch=compute_{cc},code=[sm_{cc},compute_{cc}]"


def min_compute_for_cuda(cuda_version: str | None) -> int:
    """Lowest ``compute_NN`` the given nvcc accepts (30 before CUDA 11, 35 for 11.x, 50 from 12)."""
    if not cuda_version:
        return 0
    try:
        major = int(cuda_version.split(".")[0])
    except ValueError:
        raise BuildError(f"CUDA version {cuda_version!r} is not of the form 12.2") from None
    return 50 if major >= 12 else 35 if major >= 11 else 30


def arch_block(text: str) -> str:
    match = _ARCH_BLOCK.search(text)
    if not match:
        raise BuildError("the Makefile has no 'ARCH=' assignment (pattern ^ARCH=); cannot set the CUDA architecture")
    return match.group(0)


def set_arch(text: str, compute_capability: str) -> str:
    """Replace the first ``ARCH=`` block (with its continuation lines) by one gencode for this GPU."""
    block = arch_block(text)
    line = f"ARCH= {gencode(compute_capability)}\n"
    patched = text.replace(block, line, 1)
    if arch_block(patched) != line:
        raise BuildError("rewriting ARCH= in the Makefile did not take effect")
    return patched


def drop_dead_arches(text: str, cuda_version: str | None) -> str:
    """Remove ``-gencode`` entries below what this CUDA accepts from the ARCH block (keeping the rest)."""
    floor = min_compute_for_cuda(cuda_version)
    block = arch_block(text)
    entries = _GENCODE.findall(block)
    kept = [m.group(0) for m in _GENCODE.finditer(block) if int(m.group(1)) >= floor]
    if len(kept) == len(entries):
        return text
    if not kept:
        raise BuildError(
            f"every CUDA architecture in the Makefile's ARCH= is older than CUDA {cuda_version} supports "
            f"(compute_{floor}+); give the GPU's compute capability (e.g. 7.5) so ARCH can be rewritten"
        )
    line = "ARCH= " + " \\\n      ".join(kept) + "\n"
    return text.replace(block, line, 1)


def patch_makefile(text: str, flags: BuildFlags, fork: Fork) -> str:
    """The Makefile text with ``flags`` applied (idempotent); BuildError for combinations that cannot build."""
    if fork is Fork.PJREDDIE and flags.opencv:
        raise BuildError(
            "pjreddie/darknet with OPENCV=1 uses the OpenCV 1.x C API (CvCapture, IplImage) and does not build "
            "with OpenCV 4 (what Colab and current distros ship); set opencv: false (training does not need it) "
            "or use AlexeyAB/darknet, which builds with OpenCV 4"
        )
    for name, value in flags.switches().items():
        text = set_switch(text, name, value)
    if flags.gpu:
        if flags.compute_capability:
            text = set_arch(text, flags.compute_capability)
        text = drop_dead_arches(text, flags.cuda_version)
    return text
