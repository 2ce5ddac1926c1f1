"""Greedy non-maximum suppression in plain torch (no torchvision), always computed in float32.

Same result as the reference's ``py_cpu_nms``: boxes visited by descending score; a box is dropped when its
IoU with an already kept box exceeds the threshold. Boxes are in pixels and, like the reference, widths and
heights count both end pixels (``x2 - x1 + 1``); pass ``offset=0`` for continuous coordinates.
"""

from __future__ import annotations

import torch


def box_area(boxes: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    width = (boxes[..., 2] - boxes[..., 0] + offset).clamp(min=0)
    return width * (boxes[..., 3] - boxes[..., 1] + offset).clamp(min=0)


def box_iou(box: torch.Tensor, boxes: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """IoU of one box [4] with each of ``boxes`` [M, 4]."""
    top_left = torch.maximum(box[:2], boxes[:, :2])
    bottom_right = torch.minimum(box[2:], boxes[:, 2:])
    inter = (bottom_right - top_left + offset).clamp(min=0).prod(dim=1)
    union = box_area(box, offset) + box_area(boxes, offset) - inter
    return inter / union.clamp(min=torch.finfo(torch.float32).tiny)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: float = 1.0) -> torch.Tensor:
    """Indices of the kept boxes, highest score first. ``boxes`` [M, 4] (x1, y1, x2, y2), ``scores`` [M]."""
    boxes = boxes.float()
    order = torch.argsort(scores.float(), descending=True, stable=True)
    keep: list[torch.Tensor] = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        if order.numel() == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest], offset) <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return torch.stack(keep)
