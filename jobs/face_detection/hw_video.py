"""Hardware video decode and encode on NVIDIA GPUs, chosen automatically, with the CPU path as the fallback.

- Decode: torchcodec's CUDA decoder (NVDEC) when torch sees a CUDA GPU and torchcodec is installed with CUDA
  support (``pip install 'orchestrator[nvidia]'``); otherwise OpenCV's FFmpeg on the CPU (``VideoSource``).
  NVDEC's YUV->RGB conversion differs from the CPU's by a few levels per pixel (torchcodec documents CUDA frames
  as close to, not bit-exact with, CPU frames); detections then agree within the detector's score noise.
- Encode (the annotated output video): ffmpeg's ``h264_nvenc`` when an ``ffmpeg`` binary lists it and a GPU is
  present; else ``libx264`` when listed; else OpenCV's CPU writer.

``probe_video_hardware`` is the only I/O here (thin, never raises); ``choose_decoder``/``choose_encoder`` are pure
functions of its result and the job's setting, tested without a GPU.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from orchestrator.core.errors import ConfigError

Decoder = Literal["torchcodec-cuda", "opencv-cpu"]
Encoder = Literal["h264_nvenc", "libx264", "opencv-cpu"]
Choice = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class VideoHardware:
    cuda: bool  # torch sees an NVIDIA GPU
    torchcodec: str | None  # why torchcodec's CUDA decoder cannot be used, None when it can
    ffmpeg: str | None  # the ffmpeg binary, if any
    ffmpeg_encoders: frozenset[str] = frozenset()


def _torchcodec_problem() -> str | None:
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - ImportError, or OSError/RuntimeError when FFmpeg's libraries are missing
        return f"torchcodec is not usable ({type(exc).__name__}: {exc}); pip install 'orchestrator[nvidia]'"
    return None


def _ffmpeg_encoders(ffmpeg: str) -> frozenset[str]:
    try:
        out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.add(parts[1])
    return frozenset(names)


def probe_video_hardware() -> VideoHardware:
    """What this machine offers for video decode/encode."""
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA install is "no GPU" here
        cuda = False
    ffmpeg = shutil.which("ffmpeg")
    return VideoHardware(
        cuda=cuda,
        torchcodec=_torchcodec_problem() if cuda else "no CUDA GPU",
        ffmpeg=ffmpeg,
        ffmpeg_encoders=_ffmpeg_encoders(ffmpeg) if ffmpeg else frozenset(),
    )


def choose_decoder(hw: VideoHardware, choice: Choice = "auto") -> Decoder:
    """``auto``: NVDEC through torchcodec when usable, else the CPU. ``cuda`` insists (a ConfigError if absent)."""
    if choice == "cpu":
        return "opencv-cpu"
    usable = hw.cuda and hw.torchcodec is None
    if choice == "cuda" and not usable:
        why = "no CUDA GPU is visible to torch" if not hw.cuda else hw.torchcodec
        raise ConfigError(f"video_decoder: cuda was asked for but {why}; use video_decoder: auto to fall back to the CPU")
    return "torchcodec-cuda" if usable else "opencv-cpu"


def choose_encoder(hw: VideoHardware, choice: Choice = "auto") -> Encoder:
    """``auto``: ffmpeg's h264_nvenc on a GPU, else libx264, else OpenCV's writer; ``cuda`` insists on NVENC."""
    nvenc = hw.cuda and hw.ffmpeg is not None and "h264_nvenc" in hw.ffmpeg_encoders
    if choice == "cuda" and not nvenc:
        why = ("no CUDA GPU is visible" if not hw.cuda else "no ffmpeg binary on PATH" if hw.ffmpeg is None
               else f"{hw.ffmpeg} lists no h264_nvenc encoder")
        raise ConfigError(f"video_encoder: cuda was asked for but {why}; use video_encoder: auto to fall back to the CPU")
    if choice != "cpu" and nvenc:
        return "h264_nvenc"
    if hw.ffmpeg is not None and "libx264" in hw.ffmpeg_encoders:
        return "libx264"
    return "opencv-cpu"
