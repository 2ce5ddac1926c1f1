"""A minimal ONNX model reader (protobuf wire format, no ``onnx`` dependency): a file-format library the
face-detection kind uses to import pretrained weights, kept apart from the kind's own code."""

from __future__ import annotations

from jobs.face_detection.onnx.graph import OnnxFormatError, OnnxGraph, OnnxNode, read_onnx_graph

__all__ = ["OnnxFormatError", "OnnxGraph", "OnnxNode", "read_onnx_graph"]
