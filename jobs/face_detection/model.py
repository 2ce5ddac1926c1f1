"""RetinaFace (Deng et al. 2019) in PyTorch, laid out like the released Pytorch_Retinaface checkpoints.

``build_retinaface("mobilenet0.25" | "resnet50")`` returns a network whose ``state_dict`` keys and shapes are
those of ``mobilenet0.25_Final.pth`` / ``Resnet50_Final.pth`` (after stripping ``module.``): ``body.*``,
``fpn.output1..3`` / ``fpn.merge1..2``, ``ssh1..3.conv3X3 / conv5X5_1 / conv5X5_2 / conv7X7_2 / conv7x7_3``,
``ClassHead / BboxHead / LandmarkHead.{0,1,2}.conv1x1``. The forward pass returns, per prior box,
``(loc [N,P,4], conf [N,P,2] softmaxed, landmarks [N,P,10])``. Input: BGR float minus (104, 117, 123).
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from jobs.face_detection.backbones import MobileNetV1, ResNet50Body, conv_bn, conv_bn1x1, conv_bn_no_relu

#: backbone name -> (FPN/SSH width). The FPN's inputs come from the backbone's ``out_channels``.
BACKBONES: Final[dict[str, int]] = {"mobilenet0.25": 64, "resnet50": 256}
#: Per-channel BGR mean the network was trained with (subtracted, no scaling).
BGR_MEAN: Final[tuple[float, float, float]] = (104.0, 117.0, 123.0)
ANCHORS_PER_CELL: Final = 2


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int], out_channels: int) -> None:
        super().__init__()
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.output1 = conv_bn1x1(in_channels[0], out_channels, leaky=leaky)
        self.output2 = conv_bn1x1(in_channels[1], out_channels, leaky=leaky)
        self.output3 = conv_bn1x1(in_channels[2], out_channels, leaky=leaky)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1 = self.output1(features[0])
        out2 = self.output2(features[1])
        out3 = self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[-2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[-2:], mode="nearest"))
        return [out1, out2, out3]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches concatenated, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 4:
            raise ValueError("SSH out_channels must be a multiple of 4")
        leaky = 0.1 if out_channels <= 64 else 0.0
        self.conv3X3 = conv_bn_no_relu(in_channels, out_channels // 2)
        self.conv5X5_1 = conv_bn(in_channels, out_channels // 4, leaky=leaky)
        self.conv5X5_2 = conv_bn_no_relu(out_channels // 4, out_channels // 4)
        self.conv7X7_2 = conv_bn(out_channels // 4, out_channels // 4, leaky=leaky)
        self.conv7x7_3 = conv_bn_no_relu(out_channels // 4, out_channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3 = self.conv3X3(x)
        mid = self.conv5X5_1(x)
        branch5 = self.conv5X5_2(mid)
        branch7 = self.conv7x7_3(self.conv7X7_2(mid))
        return F.relu(torch.cat([branch3, branch5, branch7], dim=1))


class _Head(nn.Module):
    """A 1x1 conv predicting ``values`` numbers per anchor, flattened to [N, H*W*anchors, values]."""

    def __init__(self, in_channels: int, values: int) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(in_channels, ANCHORS_PER_CELL * values, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    def __init__(self, backbone: str) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown RetinaFace backbone {backbone!r}; known: {', '.join(BACKBONES)}")
        self.backbone_name = backbone
        width = BACKBONES[backbone]
        self.body: nn.Module = MobileNetV1() if backbone == "mobilenet0.25" else ResNet50Body()
        self.fpn = FPN(self.body.out_channels, width)  # type: ignore[arg-type]
        self.ssh1 = SSH(width, width)
        self.ssh2 = SSH(width, width)
        self.ssh3 = SSH(width, width)
        self.ClassHead = nn.ModuleList(_Head(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(width, 10) for _ in range(3))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fpn = self.fpn(self.body(images))
        features = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(logits, dim=-1), landmarks


def build_retinaface(backbone: str) -> RetinaFace:
    """An untrained RetinaFace in eval mode (load weights with ``jobs.face_detection.weights``)."""
    return RetinaFace(backbone).eval()
