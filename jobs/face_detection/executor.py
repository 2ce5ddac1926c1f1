"""Executors: who makes a face job's chunks. The commit protocol (``ledger.py``) is the same for all of them.

``executor: {type: local}`` (the default) makes every chunk in this process with the three-stage pipeline,
``decoders`` inputs at once (each in its own thread, the detector shared); ``executor: {type: ray, ...}``
spreads the chunks over Ray actors (``ray_executor.py``).
Either way the session's process is the only writer: it commits each chunk once, in the ledger, as soon as
the chunk is made, and publishes an input once its chunks are complete. So outputs are byte-identical
whichever executor made them, and a job may change executor between sessions.
"""

from __future__ import annotations

import logging
import threading
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
    """How an executor reports to the job (called in the executor's driver thread or an input's threads)."""

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
    """Every chunk in this process: ``decoders`` inputs at once (in the tasks' order), each input's missing runs
    of chunks in order. Each input has its own decoder, writer and commit threads; the detector is shared (its
    calls take turns: ``FacePipeline.detect_lock``), so every input's batches, and so its chunks, are the same
    as when the inputs are made one by one. Even with one decoder, the next input decodes while the last one's
    final chunks are committed and its outputs published (with the job's home on the Drive mount, seconds)."""

    def __init__(self, pipeline: Any, logger: logging.Logger | None = None, prefetch: Any = None,
                 decoders: int = 1) -> None:
        """``prefetch``: an ``inputs.InputPrefetcher`` copying the next inputs off a slow mount meanwhile."""
        from jobs.face_detection.inputs import InputPrefetcher
        from jobs.face_detection.pipeline import FacePipeline

        self.pipeline: FacePipeline = pipeline
        self.prefetch: InputPrefetcher | None = prefetch
        self.decoders = max(1, decoders)
        self.log = logger or logging.getLogger(__name__)

    def status(self) -> dict[str, Any]:
        return {"executor": "local", "decoders": self.decoders}

    def run(self, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        if len(tasks) <= 1:
            for task in tasks:
                if hooks.should_stop():
                    return InputStatus.STOPPED
                outcome = self._run_one(task, ledger, hooks)
                if outcome is None:
                    return InputStatus.STOPPED
                hooks.on_finished(task, outcome)
            return InputStatus.DONE
        return self._run_at_once(tasks, ledger, hooks)

    def _run_at_once(self, tasks: list[InputTask], ledger: FaceLedger, hooks: ExecutorHooks) -> InputStatus:
        """Up to ``decoders`` inputs decoding at once, each in a thread that takes the next task when its input
        ends; twice as many threads as ``decoders``, so that while one publishes its finished input (file
        writes, fsyncs: idle cores) another, waiting with the next input, takes the free decode slot at once.
        A stop request, or an error in one thread (re-raised here), stops the others at their next batch."""
        pending = iter(tasks)
        lock = threading.Lock()
        slots = threading.Semaphore(self.decoders)
        stopped = threading.Event()
        errors: list[BaseException] = []
        inner = ExecutorHooks(should_stop=lambda: bool(errors) or hooks.should_stop(), on_frames=hooks.on_frames,
                              on_commit=hooks.on_commit, on_finished=hooks.on_finished)

        def work() -> None:
            while not stopped.is_set() and not errors:
                with lock:
                    task = next(pending, None)
                if task is None:
                    return
                held = [False]

                def gate(held: list[bool] = held) -> bool:
                    """A decode slot (at most ``decoders`` inputs decode at once); False: stop instead."""
                    while not slots.acquire(timeout=0.1):
                        if inner.should_stop():
                            return False
                    held[0] = True
                    return not inner.should_stop()

                def made(held: list[bool] = held) -> None:
                    if held[0]:
                        held[0] = False
                        slots.release()

                try:
                    outcome = self._run_one(task, ledger, inner, gate, made)
                    if outcome is None:
                        stopped.set()
                        return
                    hooks.on_finished(task, outcome)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    errors.append(exc)
                    return
                finally:
                    made()

        threads = [threading.Thread(target=work, name=f"input-{i}", daemon=True)
                   for i in range(min(2 * self.decoders, len(tasks)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return InputStatus.STOPPED if stopped.is_set() else InputStatus.DONE

    @staticmethod
    def _commit(ledger: FaceLedger, hooks: ExecutorHooks, counted: list[int] | None = None
                ) -> Callable[[ChunkResult], None]:
        def commit(chunk: ChunkResult) -> None:
            if ledger.commit(chunk) is not None:
                if counted is not None:
                    counted[0] += chunk.frames
                hooks.on_commit(chunk)

        return commit

    def _run_one(self, task: InputTask, ledger: FaceLedger, hooks: ExecutorHooks,
                 gate: Callable[[], bool] = lambda: True, made: Callable[[], None] = lambda: None
                 ) -> InputOutcome | None:
        """Make the task's chunks and publish it (None: stopped). ``gate`` is called once the input is ready
        to decode (its copy taken, its chunks looked up, the video opened) and may wait (False: stop);
        ``made`` once its frames are all read (its last chunks are still detected and committed) or its
        chunks made, before the publishing (file writes): another input may decode meanwhile."""
        read_from = self.prefetch.take(task.path) if self.prefetch is not None else task.path
        try:
            return self._make(task, read_from, ledger, hooks, gate, made)
        finally:
            if self.prefetch is not None:
                self.prefetch.release(task.path)

    def _make(self, task: InputTask, read_from: Path, ledger: FaceLedger, hooks: ExecutorHooks,
              gate: Callable[[], bool], made: Callable[[], None]) -> InputOutcome | None:
        from jobs.face_detection.pipeline import ChunkMaker

        video_format = self.pipeline.settings.video_format
        state = ledger.chunks(task.name, task.fingerprint)
        if task.image and not state.complete:
            if not gate():
                return None
            try:
                self._commit(ledger, hooks)(self.pipeline.image_chunk(read_from, task.name, task.fingerprint))
            except InputError as exc:
                ledger.record_failure(task.name, task.fingerprint, str(exc))
                return InputOutcome(InputStatus.FAILED, str(exc))
            made()
            return finish_input(task, ledger, video_format)
        maker = ChunkMaker(self.pipeline, read_from, task.name, task.fingerprint)
        try:
            if not state.complete:
                maker.open()
                if not gate():
                    return None
            while not state.complete:
                for first, stop in missing_spans(state, task.expected_chunks):
                    counted = [0]  # frames of this run already committed (reported by on_commit)

                    def on_frames(frames: int, counted: list[int] = counted) -> None:
                        hooks.on_frames(task.name, max(0, frames - counted[0]))

                    result = maker.run(first, stop, self._commit(ledger, hooks, counted), hooks.should_stop,
                                       on_frames, on_decoded=made)  # the decode slot is free once read
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
        made()
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
