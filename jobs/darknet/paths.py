"""Every path of a darknet job, built on the job's :class:`~orchestrator.core.paths.JobPaths`.

Durable (in the job home, ``<home>/darknet/``): the loss history and chart, the cfg the weights belong to,
downloaded pretrained weights. Local (in the work folder): the darknet build and its record, the prepared
dataset, and darknet's backup folder — the one folder where darknet writes its weights and from which the
checkpoint sync and the resume read them.

Darknet strips every space from the lines of obj.data and of the list files, so it must see the work folder
through a space-free name. :meth:`DarknetPaths.for_darknet` gives that name for a path of ours (the work folder
itself when it has no whitespace, else a symlink to it in the temp folder made by :meth:`ensure_darknet_view`);
it is used only in what darknet reads (its command line, obj.data, the list files). Our own code reads and
writes every file by its real name below ``work``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigError
from orchestrator.core.paths import JobPaths


def _has_space(path: Path) -> bool:
    return any(ch.isspace() for ch in str(path))


@dataclass(frozen=True)
class DarknetPaths:
    job: JobPaths

    # -- durable, in the job home ----------------------------------------------------------------------------
    @property
    def durable(self) -> Path:
        return self.job.home / "darknet"

    @property
    def loss_history(self) -> Path:
        return self.durable / "loss"

    @property
    def loss_chart(self) -> Path:
        return self.durable / "loss.png"

    def kept_cfg(self, name: str) -> Path:
        """The copy of the prepared cfg kept with the job (which cfg the weights belong to)."""
        return self.durable / name

    def kept_cfgs(self) -> list[Path]:
        return sorted(self.durable.glob("*.cfg"))

    def pretrained(self, ref: str) -> Path:
        """Where the pretrained weights ``ref`` are: a URL's download in the home, else the user's own file."""
        if ref.startswith(("http://", "https://")):
            name = ref.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "pretrained.weights"
            return self.durable / "pretrained" / name
        return Path(ref).expanduser()

    # -- local, in the work folder ---------------------------------------------------------------------------
    @property
    def work(self) -> Path:
        return self.job.work

    @property
    def source(self) -> Path:
        """The private copy of the darknet source tree (patched in place)."""
        return self.work / "darknet-src"

    @property
    def darknet_record(self) -> Path:
        """Which binary and fork this machine uses."""
        return self.work / "darknet.json"

    @property
    def dataset(self) -> Path:
        """The prepared dataset: shards, list files, obj.data, the job's cfg."""
        return self.work / "dataset"

    @property
    def archive_stage(self) -> Path:
        """Where an archive ``dataset.path`` is extracted on this machine (local disk: once per machine)."""
        return self.work / "dataset-archive"

    @property
    def obj_data(self) -> Path:
        return self.dataset / "obj.data"

    @property
    def cfg_record(self) -> Path:
        """Names the prepared cfg inside :attr:`dataset`."""
        return self.dataset / "cfg.json"

    @property
    def backup(self) -> Path:
        """Darknet's backup folder: its weights, synced to the store and read back on a resume."""
        return self.work / "backup"

    # -- as darknet sees them --------------------------------------------------------------------------------
    @property
    def darknet_view(self) -> Path:
        """The work folder under a name without whitespace (the work folder itself when it has none)."""
        work = self.work
        if not _has_space(work):
            return work
        digest = hashlib.sha256(str(work).encode()).hexdigest()[:8]
        label = re.sub(r"\s+", "_", work.name)
        return Path(tempfile.gettempdir()) / "orchestrator-darknet" / f"{label}-{digest}"

    def for_darknet(self, path: Path) -> Path:
        """``path`` (inside the work folder) as darknet must be given it; other paths are returned as they are."""
        try:
            inside = path.relative_to(self.work)
        except ValueError:
            return path
        return self.darknet_view / inside

    def ensure_darknet_view(self) -> Path:
        """Create (or repair) the space-free symlink to the work folder when one is needed; returns the view."""
        work, view = self.work, self.darknet_view
        work.mkdir(parents=True, exist_ok=True)
        if view == work:
            return view
        if _has_space(view):
            raise ConfigError(f"the work folder {work} has spaces, which darknet cannot read in obj.data, and so "
                              f"has the temp folder {view.parent}; set work_dir to a folder without spaces")
        if not (view.is_symlink() and Path(os.readlink(view)) == work):
            view.parent.mkdir(parents=True, exist_ok=True)
            tmp = view.with_name(view.name + f".{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(work, target_is_directory=True)
            os.replace(tmp, view)
        return view
