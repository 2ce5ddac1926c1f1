"""``kind: darknet`` job file fields (pydantic only: importable without numpy/matplotlib).

    name: crowdhuman
    kind: darknet
    checkpoint_dir: /content/drive/MyDrive/jobs
    darknet:
      source: https://github.com/AlexeyAB/darknet   # git URL, or a local folder with a darknet tree
      ref: master                                   # optional branch/tag for a git URL
      build: {gpu: auto, cudnn: true, opencv: false}
    dataset:
      path: /content/drive/MyDrive/datasets/crowdhuman
      format: voc
      classes: [person, head]
    cfg: yolov3                                     # template name, or a path to a cfg file
    pretrained: /content/drive/MyDrive/weights/darknet53.conv.74   # path, or an http(s) URL
    train: {map: false, gpus: auto, extra_args: []}  # gpus: auto (every visible GPU) or [0, 1]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from orchestrator.core.spec import Duration, ExpandedPath, JobSpecBase, StrictModel

TEMPLATE_NAMES = ("yolov3", "yolov3-tiny", "yolov4", "yolov4-tiny")
#: seconds kept free inside session.margin after train.stop_wait, to copy the last backup to the store
STOP_ROOM = 30.0


class BuildSpec(StrictModel):
    """Makefile switches. ``auto``: on when ``nvidia-smi`` reports a GPU."""

    gpu: bool | Literal["auto"] = "auto"
    cudnn: bool | Literal["auto"] = "auto"
    cudnn_half: bool = False
    opencv: bool = Field(False, description="Training does not need OpenCV; pjreddie cannot build it with OpenCV 4.")
    avx: bool = False
    openmp: bool = False
    libso: bool = False
    debug: bool = False
    compute_capability: str | None = Field(None, description="e.g. '7.5'; default: asked from nvidia-smi.")
    cuda_version: str | None = Field(None, description="e.g. '12.2'; default: read from nvcc --version.")
    jobs: int | None = Field(None, ge=1, description="make -jN; default: number of CPUs.")

    @field_validator("compute_capability")
    @classmethod
    def _cc(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+\.\d+", value):
            raise ValueError("compute capability looks like 7.5 or 8.6")
        return value


class DarknetSourceSpec(StrictModel):
    source: str | None = Field(None, description="git URL (cloned shallow) or a local darknet source folder.")
    ref: str | None = Field(None, description="Branch or tag of a git URL.")
    binary: ExpandedPath | None = Field(None, description="A prebuilt darknet binary: no source, no build.")
    fork: Literal["auto", "pjreddie", "alexeyab"] = Field(
        "auto", description="Detected from the source; give it with a prebuilt binary (default then: alexeyab)."
    )
    build: BuildSpec = Field(default_factory=BuildSpec)

    @model_validator(mode="after")
    def _source_or_binary(self) -> DarknetSourceSpec:
        if (self.source is None) == (self.binary is None):
            raise ValueError("give exactly one of darknet.source (git URL or folder) and darknet.binary")
        return self

    @field_validator("source")
    @classmethod
    def _no_options(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("-"):
            raise ValueError("must be a git URL or a folder, not an option")
        return value


class DatasetSpec(StrictModel):
    path: ExpandedPath = Field(description=(
        "Folder of images with VOC .xml or YOLO .txt annotations beside them (sub-folders are read too), or one "
        "archive of such a folder (.zip, .tar, .tar.gz, .tgz), extracted safely onto local disk once per machine."))
    format: Literal["voc", "yolo"] = "voc"
    classes: list[str] | None = Field(None, min_length=1, description="Class names; default (VOC): from the data.")
    test_fraction: float = Field(0.1, ge=0, lt=1)
    max_files_per_folder: int = Field(1000, ge=2, description="Sub-folders hold at most this many files.")
    seed: str = "orchestrator"
    archive_max_bytes: int | None = Field(
        None, ge=1, description="Refuse an archive that extracts to more bytes (default: free disk, at most 64 GiB).")


class TrainSpec(StrictModel):
    map: bool = Field(False, description="AlexeyAB -map: compute mAP and keep _best.weights.")
    extra_args: list[str] = Field(default_factory=list, description="Appended to darknet's command line.")
    max_batches: int | None = Field(None, ge=1, description="Templates: default from the class count (AlexeyAB rule).")
    batch: int = Field(64, ge=1)
    subdivisions: int = Field(16, ge=1)
    width: int | None = Field(None, ge=32, multiple_of=32)
    height: int | None = Field(None, ge=32, multiple_of=32)
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="[net] learning_rate (default: the cfg's); lower it (e.g. 10x) if the loss "
        "goes NaN.")
    burn_in: int | None = Field(None, ge=0, description="[net] burn_in iterations (default: the cfg's).")
    clear_pretrained: bool = Field(
        False, description="Pass -clear on the first session (for full COCO weights such as yolov3.weights)."
    )
    stop_wait: Duration = Field(
        600.0, description="At the deadline, wait at most this long for darknet's next backup before stopping it."
    )
    recent_backup: float = Field(
        0.25, ge=0, le=1,
        description="At a stop request, a backup younger than this share of the time between backups counts as "
                    "the latest: darknet stops at once instead of waiting for the next one (0: always wait).",
    )
    chart_every: Duration = Field(60.0, description="Refresh the loss chart this often.")
    gpus: Literal["auto"] | list[Annotated[int, Field(ge=0)]] = Field(
        "auto", description="auto: every visible GPU (the first 1000 iterations on one); or a list such as [0, 1].")

    @field_validator("gpus")
    @classmethod
    def _some_gpus(cls, value: Literal["auto"] | list[int]) -> Literal["auto"] | list[int]:
        if value != "auto" and not value:
            raise ValueError("give at least one GPU index, or auto")
        return value


class DarknetSpec(JobSpecBase):
    """Train a YOLO detector with darknet across sessions that vanish."""

    darknet: DarknetSourceSpec
    dataset: DatasetSpec
    cfg: str = Field(description=f"A template ({', '.join(TEMPLATE_NAMES)}) or a path to a .cfg file.")
    pretrained: str | None = Field(None, description="Path to weights (e.g. darknet53.conv.74) or an http(s) URL.")
    pretrained_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    train: TrainSpec = Field(default_factory=TrainSpec)
    path_aliases: dict[str, ExpandedPath] = Field(
        default_factory=dict, description="Symlinks made at session start: {'/WORK1': '/content/drive/MyDrive/x'}."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for darknet.")

    @model_validator(mode="after")
    def _stop_wait_inside_margin(self) -> DarknetSpec:
        """The wait for the last backup must end before the machine does (margin 0: no known hard end)."""
        margin, wait = self.session.margin, self.train.stop_wait
        if margin > 0 and wait + STOP_ROOM > margin:
            raise ValueError(
                f"train.stop_wait ({wait:.0f}s) must fit inside session.margin ({margin:.0f}s) with {STOP_ROOM:.0f}s "
                f"to spare for copying the last backup; lower stop_wait or raise margin"
            )
        return self

    @field_validator("cfg")
    @classmethod
    def _cfg_path(cls, value: str, info: ValidationInfo) -> str:
        """A template name stays as it is; a path is expanded and made absolute (relative to the job file)."""
        if value in TEMPLATE_NAMES:
            return value
        if "/" not in value and not value.endswith(".cfg"):
            raise ValueError(f"unknown template {value!r}; templates: {', '.join(TEMPLATE_NAMES)}, or a .cfg path")
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        return str(path)

    @field_validator("train")
    @classmethod
    def _no_clear_in_extra_args(cls, value: TrainSpec) -> TrainSpec:
        if "-gpus" in value.extra_args:
            raise ValueError("-gpus in extra_args: use train.gpus (auto, or a list such as [0, 1])")
        if "-clear" in value.extra_args:
            raise ValueError("-clear in extra_args would restart training from zero on every resume; "
                             "use train.clear_pretrained (first session only)")
        return value

    @field_validator("path_aliases")
    @classmethod
    def _absolute_aliases(cls, value: dict[str, object]) -> dict[str, object]:
        for link in value:
            if not link.startswith("/"):
                raise ValueError(f"alias {link!r} must be an absolute path such as /WORK1")
        return value
