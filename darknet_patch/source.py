"""Source patches for darknet trees, and the patch set a build applies.

Every patch is pattern-based (content, never line numbers), idempotent (already-patched text is recognised
and left alone), verified after applying, and refuses with a BuildError naming its target when the pattern
is missing - a silent no-op on an unexpected tree would leave a build that fails hours later.

* ``makefile``: the build switches and CUDA ARCH (``darknet_patch.makefile``); both forks.
* ``no_display`` (pjreddie): comments out the ``make_window``/``show_image`` calls inside ``#ifdef OPENCV`` in
  ``test_detector`` of ``examples/detector.c`` (a headless VM has no display; AlexeyAB has ``-dont_show``).
* ``cudnn8`` (pjreddie, CUDNN=1): cuDNN 8 removed ``cudnnGetConvolution{Forward,BackwardData,BackwardFilter}
  Algorithm``; the calls in ``src/convolutional_layer.c`` are rewritten to the ``_v7`` API (best algorithm
  by cuDNN's heuristic). Checked to compile against the API's signatures, not run on a GPU here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from darknet_patch.fork import Fork
from darknet_patch.makefile import BuildFlags, patch_makefile
from orchestrator.core.atomic import atomic_write_bytes
from orchestrator.core.errors import BuildError

#: Bump when a patch's output changes, so cached binaries built with the old patch are not reused.
PATCH_SET_VERSION = "1"

_DISPLAY_CALL = re.compile(r"^([ \t]*)((?:make_window|show_image|cvWaitKey|wait_key_cv)\s*\()", re.MULTILINE)
_OPENCV_BLOCK = re.compile(r"#ifdef OPENCV\n(.*?)#endif", re.DOTALL)
_PATCHED_DISPLAY = "// orchestrator no_display: "

_CUDNN_CALL = re.compile(
    r"cudnnGetConvolution(?P<kind>Forward|BackwardData|BackwardFilter)Algorithm\(\s*cudnn_handle\(\),"
    r"\s*(?P<a>[^,]+),\s*(?P<b>[^,]+),\s*(?P<c>[^,]+),\s*(?P<d>[^,]+),"
    r"\s*CUDNN_CONVOLUTION_\w+_SPECIFY_WORKSPACE_LIMIT,\s*\d+,\s*&(?P<out>[^)]+)\);"
)
_PERF_TYPE = {
    "Forward": "cudnnConvolutionFwdAlgoPerf_t",
    "BackwardData": "cudnnConvolutionBwdDataAlgoPerf_t",
    "BackwardFilter": "cudnnConvolutionBwdFilterAlgoPerf_t",
}


@dataclass(frozen=True)
class PatchResult:
    name: str
    file: str
    changed: bool  # False: already applied (idempotent re-run)


def _function_body(text: str, name: str, file: str) -> tuple[int, int]:
    """Start and end offsets of C function ``name``'s definition (to its closing brace at column 0)."""
    match = re.search(rf"^[\w \t\*]*\b{name}\s*\([^;{{]*\)\s*\{{", text, re.MULTILINE)
    if not match:
        raise BuildError(f"no_display patch: function {name}() not found in {file}; this is not the expected darknet")
    end = text.find("\n}", match.end())
    return match.start(), (len(text) if end < 0 else end + 2)


def patch_no_display(text: str, file: str = "examples/detector.c") -> tuple[str, bool]:
    """Comment out the display calls inside ``#ifdef OPENCV`` in ``test_detector``; (new text, changed)."""
    start, end = _function_body(text, "test_detector", file)
    body = text[start:end]
    calls = 0

    def comment_block(block: re.Match[str]) -> str:
        nonlocal calls
        inner, n = _DISPLAY_CALL.subn(lambda m: m.group(1) + _PATCHED_DISPLAY + m.group(2), block.group(1))
        calls += n
        return "#ifdef OPENCV\n" + inner + "#endif"

    new_body = _OPENCV_BLOCK.sub(comment_block, body)
    if calls == 0:
        if _PATCHED_DISPLAY in body:
            return text, False
        raise BuildError(
            f"no_display patch: no make_window/show_image call inside '#ifdef OPENCV' in test_detector() of "
            f"{file}; the source differs from pjreddie/darknet - check it by hand or use AlexeyAB with -dont_show"
        )
    if any(_DISPLAY_CALL.search(b.group(1)) for b in _OPENCV_BLOCK.finditer(new_body)):
        raise BuildError(f"no_display patch on {file} left a display call active")
    return text[:start] + new_body + text[end:], True


def patch_cudnn8(text: str, file: str = "src/convolutional_layer.c") -> tuple[str, bool]:
    """Rewrite the removed cuDNN algorithm queries to the ``_v7`` API; (new text, changed)."""

    def v7(m: re.Match[str]) -> str:
        kind = m["kind"]
        args = ", ".join(m[k].strip() for k in "abcd")
        return (
            f"{{ /* orchestrator cudnn8 */ int returned_algo_count = 0; {_PERF_TYPE[kind]} perf_results; "
            f"cudnnGetConvolution{kind}Algorithm_v7(cudnn_handle(), {args}, 1, &returned_algo_count, &perf_results); "
            f"{m['out'].strip()} = perf_results.algo; }}"
        )

    patched, count = _CUDNN_CALL.subn(v7, text)
    if count == 0:
        if "orchestrator cudnn8" in text:
            return text, False
        if "cudnnGetConvolutionForwardAlgorithm(" in text:
            raise BuildError(
                f"cudnn8 patch: {file} calls cudnnGetConvolutionForwardAlgorithm in an unexpected form; "
                "build with CUDNN=0 or use AlexeyAB/darknet, which supports cuDNN 8"
            )
        raise BuildError(f"cudnn8 patch: no cuDNN algorithm query found in {file}; is this pjreddie/darknet?")
    if re.search(r"cudnnGetConvolution\w+Algorithm\(", patched):
        raise BuildError(f"cudnn8 patch on {file} left a call to the removed cuDNN API")
    return patched, True


def _apply_file(source: Path, rel: str, edit: Callable[[str], tuple[str, bool]], name: str) -> PatchResult:
    path = source / rel
    if not path.is_file():
        raise BuildError(f"{name} patch: {rel} not found in {source}")
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    new, _ = edit(text)
    if new != text:
        atomic_write_bytes(path, new.encode("utf-8", "surrogateescape"))
    return PatchResult(name=name, file=rel, changed=new != text)


def patch_names(fork: Fork, flags: BuildFlags) -> list[str]:
    """Names of the patches a build of ``fork`` with ``flags`` applies (part of the build cache key)."""
    names = ["makefile"]
    if fork is Fork.PJREDDIE:
        names.append("no_display")
        if flags.cudnn:
            names.append("cudnn8")
    return names


def apply_patches(source: Path, fork: Fork, flags: BuildFlags) -> list[PatchResult]:
    """Apply the patch set to the tree at ``source`` in place; idempotent."""
    source = Path(source)
    results = [_apply_file(source, "Makefile", lambda t: (patch_makefile(t, flags, fork), True), "makefile")]
    names = patch_names(fork, flags)
    if "no_display" in names:
        results.append(_apply_file(source, "examples/detector.c", patch_no_display, "no_display"))
    if "cudnn8" in names:
        results.append(_apply_file(source, "src/convolutional_layer.c", patch_cudnn8, "cudnn8"))
    return results


def patched_view(fork: Fork, flags: BuildFlags) -> Callable[[str, bytes], bytes]:
    """(relative path, bytes) -> the bytes after the patch set: hashing through it ignores in-place patching."""
    edits: dict[str, Callable[[str], tuple[str, bool]]] = {
        "Makefile": lambda t: (patch_makefile(t, flags, fork), True),
    }
    names = patch_names(fork, flags)
    if "no_display" in names:
        edits["examples/detector.c"] = patch_no_display
    if "cudnn8" in names:
        edits["src/convolutional_layer.c"] = patch_cudnn8

    def view(rel: str, data: bytes) -> bytes:
        edit = edits.get(rel)
        if edit is None:
            return data
        try:
            return edit(data.decode("utf-8", "surrogateescape"))[0].encode("utf-8", "surrogateescape")
        except BuildError:
            return data  # the build itself will refuse with the message; the key just uses the raw bytes
    return view
