"""The ``darknet`` job kind: build (or restore) darknet, prepare the data, train, survive disconnects.

Steps (skipped on a re-run while their fingerprint holds and their local outputs exist):
``aliases`` (symlinks), ``darknet`` (binary from the build cache or built), ``dataset`` (labels, lists, cfg),
``pretrained`` (downloaded into the durable job folder, validated).

``run`` is one resume decision and one darknet process: the newest valid checkpoint from the store and the
local backup folder (``checkpoints.restore.prepare_resume``, validated by :class:`DarknetWeightsValidator`;
never ``-clear`` on a resume), darknet writing its backups to local disk while :class:`CheckpointSync`
copies each complete one to the store, its log parsed into progress, problems and completion. When to stop
darknet is decided by :class:`~jobs.darknet.stop_rule.StopRule` (at the deadline or a first Ctrl-C: after the
next backup, at most ``stop_wait``); the supervisor loop feeds it and acts on its decision. Every path comes
from :class:`~jobs.darknet.paths.DarknetPaths`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from checkpoints.job_checkpoints import JobCheckpoints
from checkpoints.manifest import Manifest, ManifestRecord, store_holds
from checkpoints.restore import ResumePoint
from checkpoints.spec import open_store
from darknet_patch.fork import Fork, source_revision
from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Step, Stopped
from jobs.darknet.cfg import DarknetCfg, load_cfg
from jobs.darknet.chart import LossHistory, load_history, render_chart
from jobs.darknet.classes import (
    NET_SETTINGS,
    adapt_cfg,
    apply_net_settings,
    find_heads,
    load_template,
    validate_classes,
)
from jobs.darknet.dataset import dataset_signature, prepare_dataset
from jobs.darknet.download import download
from jobs.darknet.environment import ensure_aliases, prepare_darknet, read_darknet_record
from jobs.darknet.gpus import GpuChoice, choose_gpus
from jobs.darknet.logparse import Iteration, LogParser, Problem, Saved
from jobs.darknet.network import parameter_count
from jobs.darknet.paths import DarknetPaths
from jobs.darknet.results import publish_results
from jobs.darknet.spec import TEMPLATE_NAMES, DarknetSpec
from jobs.darknet.stop_rule import GPU_SWITCH, Exited, KeepGoing, Kill, StopDecision, StopNow, StopRule
from jobs.darknet.weights import DarknetWeightsValidator, check_pretrained
from jobs.data import ExtractLimits, archive_signature, is_archive, stage_archive
from orchestrator.core import gpu
from orchestrator.core.atomic import atomic_write_text
from orchestrator.core.errors import ConfigError, JobFailedError, OrchestratorError
from orchestrator.core.logs import get_logger
from orchestrator.core.paths import JobPaths
from orchestrator.core.process import ManagedProcess
from orchestrator.core.results import ResultsFolder
from orchestrator.core.state import JobRecord

POLL_SECONDS = 0.2
STOPPING_POLL_SECONDS = 0.005
#: Problems a restart cannot fix: the job fails at once with the fix in the message.
FATAL_PROBLEMS = {"nan_loss", "out_of_memory", "file_not_found", "batch_too_small", "bad_annotation"}
STOP_TIMEOUT = 30.0

log = get_logger(__name__)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def tag_best(manifest: Manifest, key: str) -> Manifest:
    """Tag the newly published ``_best.weights`` at ``key`` ``best`` and untag the older ones of its session.

    AlexeyAB rewrites ``_best`` whenever the mAP improves, so within one session the newest is the best; it
    forgets the best mAP when it restarts, so the newest of every earlier session stays tagged too (retention
    keeps tagged records: one ``_best`` per session, not one per improvement).
    """
    new = manifest.get(key)
    if new is None:
        return manifest
    for record in manifest.records:
        if record.key != key and record.name == new.name and record.session == new.session and "best" in record.tags:
            manifest = manifest.add(replace(record, tags=tuple(t for t in record.tags if t != "best")))
    return manifest.add(replace(new, tags=tuple(sorted({*new.tags, "best"}))))


class DarknetJob(JobKind):
    spec: DarknetSpec

    def __init__(self, spec: DarknetSpec, paths: JobPaths, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(spec, paths)
        self.kind_paths = DarknetPaths(paths)
        self.clock = clock

    def cfg_path(self) -> Path | None:
        """The prepared cfg on this machine (named in the dataset's cfg record), or None."""
        try:
            name = Path(json.loads(self.kind_paths.cfg_record.read_text())["cfg"]).name
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return self.kind_paths.dataset / name

    def pretrained_path(self) -> Path | None:
        return self.kind_paths.pretrained(self.spec.pretrained) if self.spec.pretrained else None

    # -- steps -----------------------------------------------------------------------------------------------
    def steps(self, ctx: JobContext) -> list[Step]:
        spec = self.spec
        steps = []
        if spec.path_aliases:
            # now, not in the step: the fingerprints below read the dataset and cfg, which may lie behind an alias
            ensure_aliases(spec.path_aliases)
            steps.append(Step("aliases", _digest(spec.path_aliases), lambda c: ensure_aliases(spec.path_aliases),
                              lambda: all(Path(a).is_symlink() for a in spec.path_aliases), "path symlinks"))
        # a local source folder's revision is part of it: edited sources are built again on this machine too
        steps.append(Step("darknet", _digest(spec.darknet.model_dump(mode="json"), self._darknet_source_signature()),
                          self._step_darknet,
                          lambda: read_darknet_record(self.kind_paths) is not None, "build or restore darknet"))
        # the source's listing is part of the fingerprint: added or changed images re-prepare the data
        dataset_fp = _digest(spec.dataset.model_dump(mode="json"), spec.cfg,
                             spec.train.model_dump(mode="json", exclude={"recent_backup"}),  # stop rule only
                             spec.darknet.fork, spec.darknet.source, self._dataset_signature(),
                             self._cfg_source_signature())
        steps.append(Step("dataset", dataset_fp, self._step_dataset,
                          lambda: self.kind_paths.obj_data.is_file() and (self.cfg_path() or Path("/-")).is_file(),
                          "labels, train/test lists, obj.data, cfg"))
        if spec.pretrained:
            steps.append(Step("pretrained", _digest(spec.pretrained, spec.pretrained_sha256), self._step_pretrained,
                              lambda: (self.pretrained_path() or Path("/-")).is_file(), "pretrained weights"))
        return steps

    def _dataset_signature(self) -> str:
        """An archive by its signature (one open, no listing); a folder by the listing of its files."""
        path = self.spec.dataset.path
        if is_archive(path):
            return "archive:" + (archive_signature(path) if path.is_file() else "missing")
        return dataset_signature(path)

    def _darknet_source_signature(self) -> str:
        source = self.spec.darknet.source
        folder = Path(os.path.expanduser(source)) if source else None
        if folder is None or not folder.is_dir():
            return source or "prebuilt binary"  # a git URL is pinned by ref; a binary is used as it is
        try:
            return source_revision(folder)
        except OSError:
            return "unreadable"

    def _cfg_source_signature(self) -> str:
        if self.spec.cfg in TEMPLATE_NAMES:
            return self.spec.cfg
        try:
            return hashlib.sha256(Path(self.spec.cfg).read_bytes()).hexdigest()[:16]
        except OSError:
            return "missing"

    def _step_darknet(self, ctx: JobContext) -> None:
        prepare_darknet(self.spec.darknet, self.kind_paths, open_store(self.spec.store, self.paths))

    def _fork(self) -> Fork:
        record = read_darknet_record(self.kind_paths)
        if record is not None:
            return record[1]
        return Fork(self.spec.darknet.fork if self.spec.darknet.fork != "auto" else "alexeyab")

    def _step_dataset(self, ctx: JobContext) -> None:
        spec, fork, where = self.spec, self._fork(), self.kind_paths
        where.ensure_darknet_view()
        root = spec.dataset.path
        if is_archive(root):
            limits = ExtractLimits(max_bytes=spec.dataset.archive_max_bytes) if spec.dataset.archive_max_bytes else None
            staged = stage_archive(root, where.archive_stage, limits)
            ctx.record_event("dataset_archive_staged", archive=str(root), signature=staged.signature,
                             files=staged.files, bytes=staged.bytes, reused=staged.reused)
            root = staged.root
        # written under darknet's name for the work folder: the list files and obj.data are darknet's to read
        report = prepare_dataset(
            root, where.for_darknet(where.dataset), spec.dataset.format, spec.dataset.classes,
            test_fraction=spec.dataset.test_fraction, seed=spec.dataset.seed,
            max_files_per_folder=spec.dataset.max_files_per_folder, link="hardlink", fork=fork.value,
            backup=where.for_darknet(where.backup),
        )
        for issue in report.issues[:20]:
            ctx.log.warning("dataset: %s", issue.message)
        ctx.record_event("dataset_prepared", train=report.train, test=report.test, boxes=report.boxes,
                         folders=report.folders, issues=report.counts())
        classes = len(report.classes)
        if spec.cfg in TEMPLATE_NAMES:
            cfg = self.template_cfg(classes, train_images=report.train)
            name = f"{spec.cfg}-obj.cfg"
        else:
            cfg = self.user_cfg()
            validate_classes(cfg, classes)
            name = Path(spec.cfg).name
        atomic_write_text(where.dataset / name, cfg.text())
        atomic_write_text(where.kept_cfg(name), cfg.text())  # kept with the job: which cfg the weights belong to
        atomic_write_text(where.cfg_record, json.dumps({"cfg": name}))

    def template_cfg(self, classes: int, train_images: int = 0, max_batches: int | None = None) -> DarknetCfg:
        """The job file's template adapted for ``classes``, with its ``train:`` settings."""
        t = self.spec.train
        return adapt_cfg(load_template(self.spec.cfg), classes, train_images=train_images,
                         max_batches=max_batches or t.max_batches, batch=t.batch, subdivisions=t.subdivisions,
                         width=t.width, height=t.height, learning_rate=t.learning_rate, burn_in=t.burn_in)

    def net_settings(self) -> dict[str, float]:
        """The ``train:`` settings the job file gives explicitly that edit the cfg's [net] section."""
        train = self.spec.train
        return {k: getattr(train, k) for k in NET_SETTINGS if k in train.model_fields_set and getattr(train, k)}

    def user_cfg(self) -> DarknetCfg:
        """A user's own cfg as it will run: the job's copy, with the ``train:`` settings applied."""
        return apply_net_settings(load_cfg(Path(self.spec.cfg)), self.net_settings())

    def planned_cfg(self) -> DarknetCfg | None:
        """The cfg this job file trains, when it is known without preparing the data (None: classes from the data)."""
        spec = self.spec
        if spec.cfg not in TEMPLATE_NAMES:
            return self.user_cfg()
        if not spec.dataset.classes:
            return None
        return self.template_cfg(len(spec.dataset.classes))

    def plan(self) -> dict[str, Any]:
        """The cfg as it will train: [net] after the ``train:`` settings, and every detection head's classes/filters."""
        spec = self.spec
        cfg = self.planned_cfg()
        own = spec.cfg not in TEMPLATE_NAMES
        where = "the job's copy of your cfg" if own else f"template {spec.cfg}"
        if cfg is None:  # a template whose classes come from the data: the heads are set once it is read
            cfg = self.template_cfg(1, max_batches=spec.train.max_batches or 1)
            net = _net_summary(cfg)
            if spec.train.max_batches is None:
                net["max_batches"] = net["steps"] = "from the class count found in the dataset"
            return {"cfg": where, "net": net,
                    "heads": f"{len(find_heads(cfg))} detection layers; classes and filters set from the classes "
                             f"found in {spec.dataset.path}"}
        heads = [{"layer": h.layer.where(), "classes": h.layer.get_int("classes", 0),
                  "filters": h.conv.get_int("filters", 0) if h.conv is not None else None} for h in find_heads(cfg)]
        return {"cfg": where, "net": _net_summary(cfg), "heads": heads}

    def _behind_alias(self, path: Path) -> bool:
        return any(str(path).startswith(alias.rstrip("/") + "/") or str(path) == alias
                   for alias in self.spec.path_aliases)

    def check_inputs(self, previous: dict[str, Any] | None = None) -> None:
        """Every file the job reads exists; pretrained weights fit the cfg; a change keeps the checkpoints usable."""
        spec = self.spec
        checks: list[tuple[str, Path | None, str]] = [
            ("dataset.path", spec.dataset.path, "exists"),
            ("cfg", None if spec.cfg in TEMPLATE_NAMES else Path(spec.cfg), "file"),
            ("darknet.binary", spec.darknet.binary, "file"),
        ]
        source = spec.darknet.source
        if source and not source.startswith(("http://", "https://", "git@", "ssh://", "git://")):
            checks.append(("darknet.source", Path(os.path.expanduser(source)), "dir"))
        pretrained = self.pretrained_path()
        if pretrained is not None and spec.pretrained is not None and not spec.pretrained.startswith(("http://",
                                                                                                       "https://")):
            checks.append(("pretrained", pretrained, "file"))
        for field, path, what in checks:
            if path is None or self._behind_alias(path):
                continue
            ok = path.is_file() if what == "file" else path.is_dir() if what == "dir" else path.exists()
            if not ok:
                kind = {"file": "file", "dir": "folder", "exists": "file or folder"}[what]
                raise ConfigError(f"{field}: {path} does not exist (expected a {kind})")
        try:
            cfg = self.planned_cfg()
        except OSError as exc:
            raise ConfigError(f"cfg: {spec.cfg} cannot be read: {exc.strerror or exc}") from None
        if cfg is None:
            return
        try:
            parameter_count(cfg)  # every layer is one darknet knows
        except ConfigError as exc:
            raise ConfigError(f"cfg: {spec.cfg}: {exc}") from None
        if pretrained is not None and pretrained.is_file() and not self._behind_alias(pretrained):
            check_pretrained(pretrained, cfg)
        if previous is not None:
            self._check_weights_shape(cfg, previous)

    def _check_weights_shape(self, cfg: DarknetCfg, previous: dict[str, Any]) -> None:
        """Refuse a change (class count, layers) that makes the existing checkpoints a different size."""
        kept = self.kind_paths.kept_cfgs()
        if not kept:
            return
        try:
            old = load_cfg(kept[0])
            old_params, new_params = parameter_count(old), parameter_count(cfg)
        except (OSError, ConfigError):
            return
        if old_params == new_params:
            return
        changes = []
        old_classes = (previous.get("dataset") or {}).get("classes")
        if old_classes != self.spec.dataset.classes:
            changes.append(f"dataset.classes {old_classes} -> {self.spec.dataset.classes}")
        if previous.get("cfg") != self.spec.cfg:
            changes.append(f"cfg {previous.get('cfg')} -> {self.spec.cfg}")
        what = "; ".join(changes) or "the cfg's layers"
        raise ConfigError(
            f"job {self.spec.name!r}: the job file changed ({what}), so the weights size changes "
            f"({old_params:,} -> {new_params:,} parameters) and the existing checkpoints cannot be resumed. "
            f"Nothing was changed. Either revert the change to continue the job, or run with --new-lineage to start "
            f"training afresh (the old checkpoints are moved to {self.paths.lineages} and kept)"
        )

    def result_missing(self, record: JobRecord) -> str | None:
        """The ``_final`` weights recorded in the store, checked (the object exists with its size)."""
        try:
            cps = self.checkpoints()
        except (OSError, OrchestratorError) as exc:
            return f"its final weights cannot be checked ({exc})"
        return self._final_missing(cps)

    @staticmethod
    def _final_missing(cps: JobCheckpoints) -> str | None:
        """None when the newest ``final``-tagged record's object is in the store with its size, else why not."""
        try:
            finals = [r for r in cps.manifests.load().records if "final" in r.tags]
            if not finals:
                return f"the store {cps.store} holds no final weights"
            newest = max(finals, key=lambda r: r.seq)
            held = store_holds(cps.store, newest)
        except (OSError, OrchestratorError) as exc:
            return f"its final weights cannot be checked ({exc})"
        if not held:
            return f"its final weights {newest.name} are gone from the store {cps.store}"
        return None

    def _step_pretrained(self, ctx: JobContext) -> None:
        path = self.pretrained_path()
        assert path is not None and self.spec.pretrained is not None
        if self.spec.pretrained.startswith(("http://", "https://")):
            download(self.spec.pretrained, path, sha256=self.spec.pretrained_sha256)
        elif not path.is_file():
            raise ConfigError(f"pretrained weights {path} do not exist")
        cfg_path = self.cfg_path()
        if cfg_path is not None:
            check_pretrained(path, load_cfg(cfg_path))

    # -- run -------------------------------------------------------------------------------------------------
    def run(self, ctx: JobContext) -> RunOutcome:
        spec = self.spec
        if spec.path_aliases:
            ensure_aliases(spec.path_aliases)
        record = read_darknet_record(self.kind_paths)
        cfg_path = self.cfg_path()
        if record is None or cfg_path is None:
            return Crashed("darknet or the dataset is not prepared on this machine (steps did not run)")
        binary, fork = record
        cfg = load_cfg(cfg_path)
        base = cfg_path.name.split(".", 1)[0]
        cps = self.checkpoints(ctx.session_id, ctx.log)
        self.kind_paths.backup.mkdir(parents=True, exist_ok=True)
        self.kind_paths.ensure_darknet_view()  # the temp folder may have been emptied since the dataset step
        resume = cps.resume()
        if resume is not None:
            ctx.record_event("resume_from", checkpoint=resume.candidate.name, counter=resume.candidate.counter,
                             where=resume.candidate.where, skipped=[j.reason for j in resume.choice.skipped])
            if (resume.candidate.counter or 0) >= cfg.max_batches:
                ctx.report_progress(resume.candidate.counter or 0, cfg.max_batches, "iter")
                self._tag_final(cps, base)
                if self._final_missing(cps) is not None:  # a local file the store lacks: completed once stored
                    cps.publish(resume.path, resume.candidate.counter, tags=("final",))
                    missing = self._final_missing(cps)
                    if missing is not None:
                        return Crashed(f"the final weights could not be stored: {missing}")
                return Completed(f"{resume.candidate.name} is at iteration {resume.candidate.counter} "
                                 f">= max_batches {cfg.max_batches}")
        def published(record: ManifestRecord) -> None:
            if record.name.endswith("_best.weights"):  # AlexeyAB -map: keep the best-mAP weights past retention
                cps.manifests.update(lambda manifest: tag_best(manifest, record.key))
            ctx.report_checkpoint(record.name, record.counter, key=record.key, size=record.size)

        visible = gpu.visible_gpu_count()
        while True:
            counter = (resume.candidate.counter or 0) if resume is not None else 0
            choice = choose_gpus(spec.train.gpus, visible, counter)
            self._announce_gpus(ctx, choice, counter, cfg.max_batches)
            argv = self.argv(binary, fork, cfg_path, resume, choice)
            ctx.log.info("launching darknet (%s): %s", fork.value, " ".join(argv))
            cps.start_sync(on_published=published, poll_interval=0.2, guard=ctx.check_writer,
                           on_fatal=ctx.storage_fault)
            fatal: Problem | None = None
            try:
                outcome = self._supervise(ctx, argv, cfg, base, cps, switch_at=choice.switch_at)
            except _FatalProblem as exc:
                fatal = exc.problem
            finally:
                flushed = cps.stop_sync(flush_timeout=spec.train.stop_wait)
                self.draw_chart(cfg)
            if fatal is not None:  # after the flush: the checkpoints it names are in the store
                raise JobFailedError(self._fatal_message(fatal, cps))
            if not (isinstance(outcome, Stopped) and outcome.reason == GPU_SWITCH):
                break
            stop = ctx.stop_requested()  # asked while darknet finished that backup: stop, don't relaunch
            if stop:
                return Stopped(stop)
            resume = cps.resume()  # the backup darknet just wrote: go on from it on every GPU
        if isinstance(outcome, Completed):
            if not flushed:
                return Crashed("darknet finished but its final weights could not be copied to the store in time")
            self._tag_final(cps, base)
            missing = self._final_missing(cps)
            if missing is not None:  # completed means the result is in the store: check, not assume
                return Crashed(f"darknet finished but {missing}")
            self._publish_results(ctx, cfg_path, base)
        return outcome

    def _publish_results(self, ctx: JobContext, cfg_path: Path, base: str) -> None:
        best = self.kind_paths.backup / f"{base}_best.weights"
        hint = (f"This job's labelled images: {self.spec.dataset.path} ({self.spec.dataset.format} annotations; "
                f"the job converts them into YOLO labels and test.txt on the training machine).")
        try:
            written = publish_results(ResultsFolder(self.paths), cfg_path, self.kind_paths.dataset / "obj.names",
                                      self.kind_paths.backup / f"{base}_final.weights", best if best.is_file() else None,
                                      hint)
        except OSError as exc:
            ctx.log.warning("results: not written to %s: %s", self.paths.results, exc)
            return
        ctx.log.info("results in %s: %s", self.paths.results, ", ".join(written))
        ctx.record_event("results", folder=str(self.paths.results), files=written)

    def cfg_file(self) -> Path | None:
        """The prepared cfg on this machine, else the copy kept in the job home (for listings elsewhere)."""
        local = self.cfg_path()
        if local is not None and local.is_file():
            return local
        copies = self.kind_paths.kept_cfgs()
        return copies[0] if copies else None

    def checkpoints(self, session_id: str = "", logger: logging.Logger | None = None) -> JobCheckpoints:
        """Darknet's backup folder on local disk, synced to the store; weights validated against the cfg."""
        cfg_file = self.cfg_file()
        if cfg_file is None:  # not prepared yet: list what is there without the format check
            patterns: tuple[str, ...] = ("*.weights", "*.backup")
            validator = None
        else:
            base = cfg_file.name.split(".", 1)[0]
            patterns = (f"{base}*.weights", f"{base}.backup")
            validator = DarknetWeightsValidator(load_cfg(cfg_file))
        return JobCheckpoints.open(self.spec.store, self.spec.retention, self.paths, session_id,
                                   output_dir=self.kind_paths.backup, patterns=patterns, validator=validator, logger=logger)

    @staticmethod
    def _tag_final(cps: JobCheckpoints, base: str) -> None:
        finals = [r for r in cps.manifests.load().records if r.name == f"{base}_final.weights"]
        if finals:
            newest = max(finals, key=lambda r: r.seq)
            if "final" not in newest.tags:
                cps.manifests.tag(newest.key, "final")

    @staticmethod
    def _announce_gpus(ctx: JobContext, choice: GpuChoice, counter: int, max_batches: int) -> None:
        if choice.gpus:
            ctx.log.info("darknet on GPU %s of %d visible%s", choice.describe(), choice.visible,
                         f"; {choice.note}" if choice.note else "")
        elif choice.note:
            ctx.log.warning("%s", choice.note)
        ctx.record_event("darknet_gpus", gpus=list(choice.gpus), visible=choice.visible, switch_at=choice.switch_at,
                         iteration=counter)
        ctx.report_progress(counter, max_batches, "iter", gpus=choice.describe())

    def argv(self, binary: Path, fork: Fork, cfg_path: Path, resume: ResumePoint | None,
             gpus: GpuChoice | None = None) -> list[str]:
        spec = self.spec
        where = self.kind_paths
        argv = [str(binary), "detector", "train", str(where.for_darknet(where.obj_data)), str(where.for_darknet(cfg_path))]
        pretrained = self.pretrained_path()
        if resume is not None:
            argv.append(str(resume.path))  # never -clear on a resume: it would zero `seen`
        elif pretrained is not None:
            argv.append(str(pretrained))
            if spec.train.clear_pretrained:
                argv.append("-clear")
        if fork is Fork.ALEXEYAB:
            argv.append("-dont_show")
            if spec.train.map:
                argv.append("-map")
        argv += gpus.flag() if gpus is not None else []  # both forks read -gpus 0,1 in detector.c
        argv += spec.train.extra_args
        if fork is Fork.PJREDDIE and shutil.which("stdbuf"):
            argv = ["stdbuf", "-oL", *argv]  # pjreddie never flushes stdout
        return argv

    def _supervise(self, ctx: JobContext, argv: list[str], cfg: DarknetCfg, base: str,
                   cps: JobCheckpoints, switch_at: int | None = None) -> RunOutcome:
        """Run darknet, follow its log, and act on the :class:`StopRule`'s decisions (a thin driver). With
        ``switch_at``, darknet is stopped like at the deadline right after its first backup from that iteration
        on (:data:`GPU_SWITCH`), for the caller to go on on more GPUs."""
        spec = self.spec
        proc = ManagedProcess(argv, ctx.process_log("darknet"), cwd=self.kind_paths.for_darknet(self.kind_paths.dataset),
                              env=spec.env)
        ctx.record_event("process_start", pid=proc.pid, argv=argv)
        parser = LogParser()
        history = LossHistory(self.kind_paths.loss_history, f"{ctx.session_index:03d}-{ctx.session_id}")
        rule = StopRule(spec.train.stop_wait, clock=self.clock, recent_fraction=spec.train.recent_backup)
        latest = 0  # the newest iteration darknet logged
        complete = DarknetWeightsValidator(cfg, check_values=False)
        fatal: Problem | None = None
        decision: StopDecision = KeepGoing()
        next_chart = self.clock() + spec.train.chart_every
        try:
            while not isinstance(decision, (StopNow, Kill, Exited)):
                # while stopping, poll fast: the backup is whole a few ms before darknet starts the next iteration
                code = proc.wait(STOPPING_POLL_SECONDS if rule.stopping else POLL_SECONDS)
                lines = proc.new_lines()
                events = parser.feed("".join(line + "\n" for line in lines)) if lines else []
                if code is not None:
                    events += parser.close()
                for event in events:
                    if isinstance(event, Iteration):
                        history.add(event.iteration, event.loss, event.avg_loss)
                        ctx.report_progress(event.iteration, cfg.max_batches, "iter", avg_loss=_finite(event.avg_loss),
                                            loss=_finite(event.loss), hours_left=event.hours_left)
                        rule.iteration(event.iteration)
                        latest = max(latest, event.iteration)
                    elif isinstance(event, Saved) and event.kind == "final":
                        # the last write before darknet exits: a stop now waits for it to be whole (it is the
                        # job's result), instead of stopping darknet mid-write and pausing a finished job
                        rule.backup_started(Path(event.path).name)
                    elif isinstance(event, Saved) and event.kind in ("backup", "last", "iteration"):
                        rule.backup_started(Path(event.path).name)  # darknet's name for a file in our backup folder
                        if switch_at is not None and latest >= switch_at and not rule.stopping:
                            rule.stop_requested(GPU_SWITCH)  # waits for this backup to be whole
                            ctx.log.info("iteration %d: going on on more GPUs once this backup is whole", latest)
                    elif isinstance(event, Problem):
                        ctx.log.error("darknet: %s; fix: %s", event.message, event.fix)
                        ctx.record_event("darknet_problem", problem=event.kind, message=event.message, fix=event.fix)
                        if event.kind in FATAL_PROBLEMS and fatal is None:
                            fatal = event
                            rule.stop_requested("fatal")
                if code is not None:
                    decision = rule.process_exited(code)
                    break
                reason = ctx.stop_requested()
                if reason and not rule.stopping:
                    decision = rule.stop_requested(reason)
                    ctx.log.info("stop requested (%s): %s", reason, decision.why if isinstance(decision, StopNow)
                                 else f"waiting for darknet's next backup (at most {spec.train.stop_wait:g}s)")
                check = rule.backup_to_check
                if check is not None:
                    verdict = complete.validate(self.kind_paths.backup / check.name)
                    if verdict.ok:
                        rule.backup_verified(check.name, verdict.counter or 0)
                decision = rule.tick()
                if self.clock() >= next_chart:
                    self.draw_chart(cfg)
                    next_chart = self.clock() + spec.train.chart_every
        except KeyboardInterrupt:  # a second Ctrl-C
            decision = rule.second_signal()
            if isinstance(decision, Kill):
                proc.stop(signal.SIGKILL, 0)
            raise
        finally:
            history.close()
            proc.close()
        if isinstance(decision, StopNow):
            code = proc.stop(signal.SIGTERM, STOP_TIMEOUT)
            if fatal is None:
                ctx.log.info("%s", decision.why)
                ctx.record_event("process_end", pid=proc.pid, exit_code=code, stopped_for=decision.reason,
                                 after_backup=decision.after_backup)
                finished = self._final_written(cfg, base)
                if finished is not None:  # the stop came as darknet wrote _final: the job is done, not paused
                    return Completed(finished)
                return Stopped(decision.reason)
        elif isinstance(decision, Exited):
            code = decision.code
        else:
            code = proc.stop(signal.SIGKILL, 0)
        ctx.record_event("process_end", pid=proc.pid, exit_code=code)
        tail = proc.tail(20)
        if fatal is not None:
            raise _FatalProblem(fatal)
        finished = self._final_written(cfg, base) if parser.finished else None
        if finished is not None:
            return Completed(finished)
        return Crashed(f"darknet exited with code {code} before writing final weights", exit_code=code, log_tail=tail)

    def _fatal_message(self, problem: Problem, cps: JobCheckpoints) -> str:
        """What stopped darknet, its fix, and what ``run --retry`` will then resume from."""
        text = f"darknet stopped: {problem.message}. Fix: {problem.fix}"
        if problem.kind != "nan_loss" or problem.iteration is None:
            return f"{text}; then run --retry"
        try:  # weights saved at or after the NaN are NaN themselves (the resume skips them): the newest before
            records = cps.manifests.load().records
        except OrchestratorError:
            return f"{text}; then run --retry (it resumes from the newest checkpoint saved before the NaN, if any)"
        before = [r for r in records if r.counter is not None and r.counter < problem.iteration]
        if before:
            newest = max(before, key=lambda r: (r.counter or 0, r.seq))
            return (f"{text}; then run --retry resumes from iteration {newest.counter} ({newest.name}, the newest "
                    f"checkpoint saved before the NaN)")
        start = "the pretrained weights" if self.spec.pretrained else "the beginning"
        return f"{text}; no checkpoint was saved before it, so run --retry then starts again from {start}"

    def _final_written(self, cfg: DarknetCfg, base: str) -> str | None:
        """A summary if complete ``_final`` weights at ``max_batches`` are on local disk, else None."""
        final = self.kind_paths.backup / f"{base}_final.weights"
        done = DarknetWeightsValidator(cfg, check_values=False).validate(final) if final.exists() else None
        if done is not None and done.ok and (done.counter or 0) >= cfg.max_batches:
            return f"{final.name} written at iteration {done.counter}"
        return None

    # -- reporting -------------------------------------------------------------------------------------------
    def draw_chart(self, cfg: DarknetCfg | None = None) -> None:
        try:
            render_chart(load_history(self.kind_paths.loss_history), self.kind_paths.loss_chart, title=f"{self.spec.name}: loss",
                         max_batches=cfg.max_batches if cfg else None)
        except Exception as exc:  # noqa: BLE001 - a chart must never stop training
            log.warning("loss chart not drawn: %s", exc)

    def status_extra(self) -> dict[str, Any]:
        chart = self.kind_paths.loss_chart
        extra: dict[str, Any] = {"loss_chart": str(chart)} if chart.exists() else {}
        if self.paths.results.is_dir():
            extra["results"] = str(self.paths.results)
        cfg_path = self.cfg_path()
        if cfg_path is not None and "results" not in extra:  # local disk: only until results/ holds the cfg
            extra["cfg"] = str(cfg_path)
        return extra


def _net_summary(cfg: DarknetCfg) -> dict[str, Any]:
    """The [net] settings that decide how training runs, as darknet reads them (absent: darknet's default)."""
    keys = ("batch", "subdivisions", "width", "height", "max_batches", "steps", "learning_rate", "burn_in")
    values = {key: cfg.net.get(key) for key in keys}
    return {key: int(value) if value.isdigit() else value for key, value in values.items() if value is not None}


class _FatalProblem(Exception):
    """Darknet printed a problem a restart cannot fix; ``run`` turns it into a JobFailedError after the flush."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem
