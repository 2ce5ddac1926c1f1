"""Walk a darknet network's layer shapes and compute the exact byte size of its weights file.

A weights file is a header (int32 major, minor, revision, then ``seen``: int64 when ``major*10+minor >= 2``,
else int32) followed by float32 parameters in layer order, as darknet's ``save_weights_upto`` writes them:

* convolutional: biases[n], then (batch_normalize) scales[n], rolling_mean[n], rolling_variance[n], then
  weights[n * c/groups * size * size];
* connected: biases[out], weights[out * in], then (batch_normalize) scales, rolling_mean, rolling_variance;
* batchnorm: scales, rolling_mean, rolling_variance [c each];
* shortcut with ``weights_type`` (AlexeyAB): (n+1) per_feature, (n+1)*c per_channel;
* local: biases[out_h*out_w*n], weights[out_h*out_w * n*c*size*size].

Every other supported layer only reshapes. The walk is pure: a parsed cfg in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.darknet.cfg import DarknetCfg, Section
from orchestrator.core.errors import ConfigError

FLOAT_BYTES = 4

#: Layers that pass their input shape through unchanged and have no weights.
_PASS_THROUGH = {
    "yolo", "region", "detection", "gaussian_yolo", "dropout", "softmax", "cost", "logistic", "l2norm",
    "activation", "scale_channels", "sam", "contrastive", "empty", "silence",
}


@dataclass(frozen=True)
class LayerShape:
    index: int
    name: str
    out_w: int
    out_h: int
    out_c: int
    params: int  # float32 parameters this layer writes to the weights file


def header_bytes(major: int, minor: int) -> int:
    """Size of the weights header for a version: 3 int32 plus a 32- or 64-bit ``seen``."""
    return 12 + (8 if major * 10 + minor >= 2 else 4)


def _conv(sec: Section, w: int, h: int, c: int) -> tuple[int, int, int, int]:
    n = sec.get_int("filters", 1)
    size = sec.get_int("size", 1)
    groups = max(sec.get_int("groups", 1), 1)
    stride = sec.get_int("stride", 1)
    stride_x = sec.get_int("stride_x", stride)
    stride_y = sec.get_int("stride_y", stride)
    dilation = sec.get_int("dilation", 1) if size > 1 else 1
    padding = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    if c % groups:
        raise ConfigError(f"{sec.where('groups')}: input channels {c} are not divisible by groups={groups}")
    span = (size - 1) * dilation + 1
    out_w = (w + 2 * padding - span) // stride_x + 1
    out_h = (h + 2 * padding - span) // stride_y + 1
    params = n + n * (c // groups) * size * size
    if sec.get_int("batch_normalize", 0):
        params += 3 * n
    return out_w, out_h, n, params


def _route(sec: Section, shapes: list[LayerShape], index: int) -> tuple[int, int, int]:
    refs = sec.get_ints("layers")
    if not refs:
        raise ConfigError(f"{sec.where()}: [route] needs layers=")
    picked = [_resolve(sec, "layers", ref, shapes, index) for ref in refs]
    groups = max(sec.get_int("groups", 1), 1)
    first = picked[0]
    out_c = sum(s.out_c for s in picked)
    return first.out_w, first.out_h, out_c // groups


def _resolve(sec: Section, key: str, ref: int, shapes: list[LayerShape], index: int) -> LayerShape:
    target = index + ref if ref < 0 else ref
    if not 0 <= target < index:
        raise ConfigError(f"{sec.where(key)}: {key}= refers to layer {target}, which is not an earlier layer")
    return shapes[target]


def walk_network(cfg: DarknetCfg) -> list[LayerShape]:
    """Output shape and parameter count of every layer, in order; ConfigError on unsupported layers."""
    w = cfg.net.get_int("width", 0)
    h = cfg.net.get_int("height", 0)
    c = cfg.net.get_int("channels", 0)
    inputs = cfg.net.get_int("inputs", w * h * c)
    if not w * h * c:
        w, h, c = 1, 1, inputs
    shapes: list[LayerShape] = []
    for index, sec in enumerate(cfg.layers):
        params = 0
        name = sec.name
        if name in ("convolutional", "conv"):
            w, h, c, params = _conv(sec, w, h, c)
        elif name in ("connected", "conn"):
            outputs = sec.get_int("output", 1)
            params = outputs + outputs * (w * h * c)
            if sec.get_int("batch_normalize", 0):
                params += 3 * outputs
            w, h, c = 1, 1, outputs
        elif name in ("maxpool", "max", "local_avgpool"):
            stride = sec.get_int("stride", 1)
            stride_x = sec.get_int("stride_x", stride)
            stride_y = sec.get_int("stride_y", stride)
            size = sec.get_int("size", stride)
            padding = sec.get_int("padding", size - 1)
            if sec.get_int("maxpool_depth", 0):
                c = sec.get_int("out_channels", 1)
            else:
                w = (w + padding - size) // stride_x + 1
                h = (h + padding - size) // stride_y + 1
        elif name in ("avgpool", "avg"):
            w, h = 1, 1
        elif name == "upsample":
            stride = sec.get_int("stride", 2)
            if stride < 0:
                w, h = w // -stride, h // -stride
            else:
                w, h = w * stride, h * stride
        elif name == "reorg":
            stride = sec.get_int("stride", 1)
            if sec.get_int("reverse", 0):
                w, h, c = w * stride, h * stride, c // (stride * stride)
            else:
                w, h, c = w // stride, h // stride, c * stride * stride
        elif name == "route":
            w, h, c = _route(sec, shapes, index)
        elif name == "shortcut":
            refs = sec.get_ints("from") or []
            for ref in refs:
                _resolve(sec, "from", ref, shapes, index)
            kind = sec.get("weights_type", "none")
            if kind == "per_feature":
                params = len(refs) + 1
            elif kind == "per_channel":
                params = (len(refs) + 1) * c
        elif name == "batchnorm":
            params = 3 * c
        elif name == "local":
            n = sec.get_int("filters", 1)
            size = sec.get_int("size", 1)
            stride = sec.get_int("stride", 1)
            pad = sec.get_int("pad", 0)
            out_w = (w + 2 * pad - size) // stride + 1 if pad else (w - size) // stride + 1
            out_h = (h + 2 * pad - size) // stride + 1 if pad else (h - size) // stride + 1
            locations = out_w * out_h
            params = locations * n + locations * n * c * size * size
            w, h, c = out_w, out_h, n
        elif name == "crop":
            w = sec.get_int("crop_width", 1)
            h = sec.get_int("crop_height", 1)
        elif name not in _PASS_THROUGH:
            raise ConfigError(
                f"{sec.where()}: layer type [{name}] is not supported by the weights-size check "
                "(supported: convolutional, connected, maxpool, avgpool, upsample, reorg, route, shortcut, "
                f"batchnorm, local, crop, {', '.join(sorted(_PASS_THROUGH))})"
            )
        if w <= 0 or h <= 0 or c <= 0:
            raise ConfigError(f"{sec.where()}: output shape {w}x{h}x{c} is empty; check width/height/stride")
        shapes.append(LayerShape(index=index, name=name, out_w=w, out_h=h, out_c=c, params=params))
    return shapes


def parameter_count(cfg: DarknetCfg) -> int:
    return sum(shape.params for shape in walk_network(cfg))


def weights_size(cfg: DarknetCfg, major: int = 0, minor: int = 2) -> int:
    """Exact byte size of a full weights file of ``cfg`` written by darknet version ``major.minor``."""
    return header_bytes(major, minor) + FLOAT_BYTES * parameter_count(cfg)
