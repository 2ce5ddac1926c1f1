from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jobs.face_detection.model import build_retinaface
from jobs.face_detection.weights import identify_backbone, load_retinaface, read_state_dict
from orchestrator.core.errors import CheckpointError, ConfigError


def test_mobilenet_state_dict_has_reference_keys_and_shapes() -> None:
    sd = build_retinaface("mobilenet0.25").state_dict()
    expected_shapes = {
        "body.stage1.0.0.weight": (8, 3, 3, 3),
        "body.stage1.1.0.weight": (8, 1, 3, 3),  # depthwise
        "body.stage1.1.3.weight": (16, 8, 1, 1),  # pointwise
        "body.stage1.1.4.running_var": (16,),
        "body.stage2.5.3.weight": (128, 128, 1, 1),
        "body.stage3.1.3.weight": (256, 256, 1, 1),
        "fpn.output1.0.weight": (64, 64, 1, 1),
        "fpn.output3.0.weight": (64, 256, 1, 1),
        "fpn.merge1.0.weight": (64, 64, 3, 3),
        "ssh1.conv3X3.0.weight": (32, 64, 3, 3),
        "ssh2.conv5X5_1.0.weight": (16, 64, 3, 3),
        "ssh3.conv5X5_2.0.weight": (16, 16, 3, 3),
        "ssh3.conv7X7_2.0.weight": (16, 16, 3, 3),
        "ssh3.conv7x7_3.1.bias": (16,),
        "ClassHead.0.conv1x1.weight": (4, 64, 1, 1),
        "BboxHead.1.conv1x1.weight": (8, 64, 1, 1),
        "LandmarkHead.2.conv1x1.bias": (20,),
    }
    for key, shape in expected_shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith(("body.fc", "body.avg")) for k in sd)
    assert len([k for k in sd if k.endswith(".weight") and sd[k].dim() == 4]) == 56  # 56 convs, as the export


def test_resnet50_body_follows_torchvision_names() -> None:
    sd = build_retinaface("resnet50").state_dict()
    for key, shape in {
        "body.conv1.weight": (64, 3, 7, 7),
        "body.bn1.running_mean": (64,),
        "body.layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "body.layer2.3.conv3.weight": (512, 128, 1, 1),
        "body.layer3.5.bn2.weight": (256,),
        "body.layer4.0.downsample.1.running_var": (2048,),
        "fpn.output1.0.weight": (256, 512, 1, 1),
        "fpn.output3.0.weight": (256, 2048, 1, 1),
        "ssh1.conv3X3.0.weight": (128, 256, 3, 3),
        "ClassHead.0.conv1x1.weight": (4, 256, 1, 1),
    }.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith(("body.fc", "body.avgpool")) for k in sd)
    params = sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k)
    assert params == 27_293_600  # RetinaFace-R50 as published (27.29 M parameters)


def _random_checkpoint(backbone: str, path: Path, prefix: str = "") -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = build_retinaface(backbone)
    sd = {f"{prefix}{k}": (torch.randn_like(v) * 0.05 if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    for k, v in sd.items():
        if k.endswith("running_var"):
            sd[k] = v.abs() + 0.5
    torch.save(sd, path)
    return sd


def test_resnet50_checkpoint_with_module_prefix_loads_strictly_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "Resnet50_Final.pth"
    saved = _random_checkpoint("resnet50", path, prefix="module.")
    model = load_retinaface("resnet50", path)
    assert torch.equal(model.state_dict()["body.layer3.2.conv2.weight"], saved["module.body.layer3.2.conv2.weight"])
    with torch.inference_mode():
        loc, conf, landmarks = model(torch.zeros(1, 3, 96, 128))
    assert loc.shape == (1, 2 * (12 * 16 + 6 * 8 + 3 * 4), 4)
    assert conf.shape[-1] == 2 and landmarks.shape[-1] == 10
    assert torch.allclose(conf.sum(-1), torch.ones(1))


def test_weights_of_the_other_backbone_are_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    _random_checkpoint("resnet50", path, prefix="module.")
    with pytest.raises(ConfigError, match=r"resnet50 checkpoint \(like Resnet50_Final.pth\).*retinaface-mobilenet0.25"):
        load_retinaface("mobilenet0.25", path)
    _random_checkpoint("mobilenet0.25", path)
    with pytest.raises(ConfigError, match=r"mobilenet0.25 checkpoint.*model: retinaface-mobilenet0.25"):
        load_retinaface("resnet50", path)


def test_missing_and_unexpected_keys_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    sd = _random_checkpoint("mobilenet0.25", path)
    del sd["LandmarkHead.1.conv1x1.bias"]
    sd["extra.weight"] = torch.zeros(1)
    sd["ssh1.conv3X3.0.weight"] = torch.zeros(3, 3)
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as info:
        load_retinaface("mobilenet0.25", path)
    message = str(info.value)
    assert "missing keys: LandmarkHead.1.conv1x1.bias" in message
    assert "unexpected keys: extra.weight" in message
    assert "ssh1.conv3X3.0.weight (3, 3) != (32, 64, 3, 3)" in message


def test_checkpoint_without_batchnorm_counters_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.pth"
    sd = _random_checkpoint("mobilenet0.25", path)
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, path)
    model = load_retinaface("mobilenet0.25", path)
    assert torch.equal(model.state_dict()["fpn.merge2.0.weight"], sd["fpn.merge2.0.weight"])


def test_missing_weights_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not found at .*nope\.pth.*mobilenet0.25_Final.pth or Resnet50_Final.pth"):
        load_retinaface("mobilenet0.25", tmp_path / "nope.pth")


def test_damaged_weights_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = tmp_path / "half.pth"
    _random_checkpoint("mobilenet0.25", path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="damaged or not a PyTorch checkpoint"):
        read_state_dict(path)
    path.write_text("<html>quota exceeded</html>")
    with pytest.raises(CheckpointError):
        read_state_dict(path)


def test_identify_backbone() -> None:
    assert identify_backbone(build_retinaface("mobilenet0.25").state_dict()) == "mobilenet0.25"
    assert identify_backbone(build_retinaface("resnet50").state_dict()) == "resnet50"
    assert identify_backbone({"foo": torch.zeros(1)}) is None
