"""Hardware decode/encode selection: NVDEC/NVENC when a GPU offers them, the CPU path otherwise (no GPU here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.face_detection.hw_video import VideoHardware, choose_decoder, choose_encoder, probe_video_hardware
from jobs.face_detection.video_source import VideoSource, open_video
from orchestrator.core.errors import ConfigError

from .conftest import write_face_video

CPU = VideoHardware(cuda=False, torchcodec="no CUDA GPU", ffmpeg=None)
GPU_FULL = VideoHardware(cuda=True, torchcodec=None, ffmpeg="/usr/bin/ffmpeg",
                         ffmpeg_encoders=frozenset({"h264_nvenc", "libx264", "mpeg4"}))
GPU_BARE = VideoHardware(cuda=True, torchcodec="torchcodec is not usable (ImportError)", ffmpeg=None)


def test_auto_uses_the_gpu_only_when_everything_is_there() -> None:
    assert choose_decoder(GPU_FULL) == "torchcodec-cuda" and choose_encoder(GPU_FULL) == "h264_nvenc"
    assert choose_decoder(GPU_BARE) == "opencv-cpu" and choose_encoder(GPU_BARE) == "opencv-cpu"
    assert choose_decoder(CPU) == "opencv-cpu" and choose_encoder(CPU) == "opencv-cpu"
    x264_only = VideoHardware(cuda=False, torchcodec="no CUDA GPU", ffmpeg="ffmpeg",
                              ffmpeg_encoders=frozenset({"libx264", "h264_nvenc"}))
    assert choose_encoder(x264_only) == "libx264"  # NVENC listed, but no GPU to run it


def test_cpu_is_honoured_even_on_a_gpu() -> None:
    assert choose_decoder(GPU_FULL, "cpu") == "opencv-cpu"
    assert choose_encoder(GPU_FULL, "cpu") == "libx264"


def test_cuda_insisted_on_without_a_gpu_says_why() -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        choose_decoder(CPU, "cuda")
    with pytest.raises(ConfigError, match="torchcodec is not usable"):
        choose_decoder(GPU_BARE, "cuda")
    with pytest.raises(ConfigError, match="no ffmpeg binary"):
        choose_encoder(GPU_BARE, "cuda")


def test_this_cpu_machine_probes_as_cpu_and_decodes_with_opencv(tmp_path: Path) -> None:
    hw = probe_video_hardware()
    assert not hw.cuda and choose_decoder(hw) == "opencv-cpu"
    source = open_video(write_face_video(tmp_path / "c.avi", frames=3), choose_decoder(hw))
    try:
        assert isinstance(source, VideoSource) and len(list(source.frames(0, 1))) == 3
    finally:
        source.close()
