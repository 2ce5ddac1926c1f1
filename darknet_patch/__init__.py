"""Pattern-based, idempotent patches for darknet sources (both forks) and its cached build."""

from __future__ import annotations

from darknet_patch.build import BuildCache, BuildKey, BuiltDarknet, check_binary, ensure_darknet, run_make
from darknet_patch.fork import Fork, detect_fork, source_revision
from darknet_patch.makefile import BuildFlags, gencode, patch_makefile
from darknet_patch.source import PatchResult, apply_patches, patch_cudnn8, patch_no_display

__all__ = [
    "BuildCache",
    "BuildFlags",
    "BuildKey",
    "BuiltDarknet",
    "Fork",
    "PatchResult",
    "apply_patches",
    "check_binary",
    "detect_fork",
    "ensure_darknet",
    "gencode",
    "patch_cudnn8",
    "patch_makefile",
    "patch_no_display",
    "run_make",
    "source_revision",
]
