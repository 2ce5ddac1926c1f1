"""Executors: who makes a face job's chunks. The commit protocol (``ledger.py``) is the same for all of them.

``executor: {type: local}`` (the default) makes every chunk in this process, input after input, with the
three-stage pipeline; ``executor: {type: ray, ...}`` spreads the chunks over Ray actors (``ray_executor.py``).
Either way the session's process is the only writer: it commits each chunk once, in the ledger, as soon as
the chunk is made, and publishes an input once its chunks are complete. So outputs are byte-identical
whichever executor made them, and a job may change executor between sessions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jobs.face_detection.chunks import ChunkResult, InputStatus, missing_spans
from jobs.face_detection.ledger import FaceLedger, InputOutcome
from jobs.face_detection.video_source import InputError, is_image


@dataclass(frozen=True)
class InputTask:
    """One input still to finish: what every executor needs to make and publish its chunks."""

    path: Path
    name: str
    fingerprint: str
    image: bool
    expected_chunks: int  # from the container's frame count (0 when unknown)
    facts: dict[str, Any] = field(default_factory=dict)  # summary fields the job knows (input, model, ...)


@dataclass
class ExecutorHooks:
    """How an executor reports to the job (all called in the executor's driver thread or writer thread)."""

    should_stop: Callable[[], bool] = lambda: False
    on_frames: Callable[[str, int], None] = lambda name, frames: None  # frames made, not yet committed
    on_commit: Callable[[ChunkResult], None] = lambda chunk: None
    on_finished: Callable[[InputTask, InputOutcome], None] = lambda task, outcome: None


class Executor(Protocol):
    def run(self, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        """Make, commit and publish the tasks' chunks; DONE, or STOPPED (stop requested)."""

    def status(self) -> dict[str, Any]:
        """Facts for the status file (workers, ...)."""


def plan_inputs(
    ledger: FaceLedger, inputs: list[Path], names: dict[Path, str], fingerprint: Callable[[Path], str],
    expected_frames: dict[Path, int], frames_per_chunk: int, facts: Callable[[Path], dict[str, Any]],
) -> tuple[list[InputTask], dict[Path, InputOutcome]]:
    """The inputs still to do (their stale chunks of other settings discarded), and the finished ones."""
    tasks: list[InputTask] = []
    finished: dict[Path, InputOutcome] = {}
    for path in inputs:
        name, print_ = names[path], fingerprint(path)
        if ledger.finished(name, print_) is not None:
            finished[path] = ledger.outcome(name)
            continue
        ledger.discard_stale(name, print_)
        tasks.append(InputTask(path=path, name=name, fingerprint=print_, image=is_image(path),
                               expected_chunks=-(-expected_frames[path] // frames_per_chunk), facts=facts(path)))
    return tasks, finished


def finish_input(task: InputTask, ledger: FaceLedger, video_format: str) -> InputOutcome:
    """Publish ``task`` once its chunks are complete (shared by every executor)."""
    return ledger.finish(task.name, task.fingerprint, task.path, task.facts, video_format, image=task.image)


class LocalExecutor:
    """Every chunk in this process: one input at a time, its missing runs of chunks in order."""

    def __init__(self, pipeline: Any, logger: logging.Logger | None = None, prefetch: Any = None) -> None:
        """``prefetch``: an ``inputs.InputPrefetcher`` copying the next inputs off a slow mount meanwhile."""
        from jobs.face_detection.inputs import InputPrefetcher
        from jobs.face_detection.pipeline import FacePipeline

        self.pipeline: FacePipeline = pipeline
        self.prefetch: InputPrefetcher | None = prefetch
        self.log = logger or logging.getLogger(__name__)

    def status(self) -> dict[str, Any]:
        return {"executor": "local"}

    def run(self, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        for task in tasks:
            if hooks.should_stop():
                return InputStatus.STOPPED
            outcome = self._run_one(task, ledger, hooks)
            if outcome is None:
                return InputStatus.STOPPED
            hooks.on_finished(task, outcome)
        return InputStatus.DONE

    @staticmethod
    def _commit(ledger: FaceLedger, hooks: ExecutorHooks, counted: list[int] | None = None
                ) -> Callable[[ChunkResult], None]:
        def commit(chunk: ChunkResult) -> None:
            if ledger.commit(chunk) is not None:
                if counted is not None:
                    counted[0] += chunk.frames
                hooks.on_commit(chunk)

        return commit

    def _run_one(self, task: InputTask, ledger: FaceLedger, hooks: ExecutorHooks) -> InputOutcome | None:
        read_from = self.prefetch.take(task.path) if self.prefetch is not None else task.path
        try:
            return self._make(task, read_from, ledger, hooks)
        finally:
            if self.prefetch is not None:
                self.prefetch.release(task.path)

    def _make(self, task: InputTask, read_from: Path, ledger: FaceLedger, hooks: ExecutorHooks
              ) -> InputOutcome | None:
        from jobs.face_detection.pipeline import ChunkMaker

        video_format = self.pipeline.settings.video_format
        state = ledger.chunks(task.name, task.fingerprint)
        if task.image and not state.complete:
            try:
                self._commit(ledger, hooks)(self.pipeline.image_chunk(read_from, task.name, task.fingerprint))
            except InputError as exc:
                ledger.record_failure(task.name, task.fingerprint, str(exc))
                return InputOutcome(InputStatus.FAILED, str(exc))
            return finish_input(task, ledger, video_format)
        maker = ChunkMaker(self.pipeline, read_from, task.name, task.fingerprint)
        try:
            while not state.complete:
                for first, stop in missing_spans(state, task.expected_chunks):
                    counted = [0]  # frames of this run already committed (reported by on_commit)

                    def on_frames(frames: int, counted: list[int] = counted) -> None:
                        hooks.on_frames(task.name, max(0, frames - counted[0]))

                    result = maker.run(first, stop, self._commit(ledger, hooks, counted), hooks.should_stop,
                                       on_frames)
                    if result.status is InputStatus.STOPPED:
                        return None
                    if result.status is InputStatus.FAILED:
                        ledger.record_failure(task.name, task.fingerprint, result.reason)
                        return InputOutcome(InputStatus.FAILED, result.reason)
                before, state = state, ledger.chunks(task.name, task.fingerprint)
                if not state.complete and state == before:
                    raise RuntimeError(f"{task.name}: a pass over its missing chunks committed none; giving up")
        finally:
            maker.close()
        return finish_input(task, ledger, video_format)


def process_inputs(
    executor: Executor, ledger: FaceLedger, paths: list[Path], fingerprint: Callable[[Path], str],
    frame_step: int, frames_per_chunk: int, hooks: ExecutorHooks | None = None,
) -> tuple[InputStatus, dict[str, InputOutcome], set[str]]:
    """Run ``executor`` over ``paths`` (output names: their stems) outside a job, as benchmarks and tests do.
    Returns the executor's result, each input's outcome and the names found finished already."""
    from jobs.face_detection.build import declared_frames

    hooks = hooks or ExecutorHooks()
    names = {p: p.stem for p in paths}
    expected = {p: declared_frames(p, frame_step) for p in paths}
    tasks, finished = plan_inputs(ledger, paths, names, fingerprint, expected, frames_per_chunk,
                                  lambda p: {"input": str(p), "frame_step": frame_step})
    outcomes = {names[p]: o for p, o in finished.items()}
    report = hooks.on_finished

    def on_finished(task: InputTask, outcome: InputOutcome) -> None:
        outcomes[task.name] = outcome
        report(task, outcome)

    hooks.on_finished = on_finished
    return executor.run(tasks, ledger, hooks), outcomes, {names[p] for p in finished}
