"""The ``command`` job kind: run a program, watch its checkpoints, resume it from the newest valid one.

Two places for ``{output_dir}``:
- default: ``<job home>/output`` on durable storage; the program writes its checkpoints there directly.
- ``local_output: true``: ``<work_dir>/<name>/output`` on fast local disk; new checkpoints are copied to the
  job's store in the background as soon as they are complete (live sync), and a resume on a blank machine
  restores the newest valid one from the store first.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Stopped
from jobs.command.checkpoints import scan_checkpoints
from jobs.command.paths import CommandPaths
from jobs.command.spec import CommandSpec
from orchestrator.core.paths import JobPaths
from orchestrator.core.process import ManagedProcess

if TYPE_CHECKING:
    from checkpoints.discovery import Candidate
    from checkpoints.job_checkpoints import JobCheckpoints

POLL_SECONDS = 0.2
#: Longest wait, at a clean stop, for pending checkpoint copies to reach the store.
FLUSH_TIMEOUT = 600.0


class CommandJob(JobKind):
    spec: CommandSpec

    def __init__(self, spec: CommandSpec, paths: JobPaths) -> None:
        super().__init__(spec, paths)
        self.kind_paths = CommandPaths(paths, local_output=spec.local_output)

    @property
    def output_dir(self) -> Path:
        return self.kind_paths.output

    def checkpoints(self, session_id: str = "") -> JobCheckpoints | None:
        if self.spec.checkpoints is None:
            return None
        from checkpoints.job_checkpoints import JobCheckpoints

        return JobCheckpoints.open(self.spec.store, self.spec.retention, self.paths, session_id,
                                   output_dir=self.output_dir, patterns=(Path(self.spec.checkpoints).name,))

    def is_done(self) -> bool:
        return self.spec.done_when is not None and self.kind_paths.done_marker(self.spec.done_when).exists()

    def argv(self, values: dict[str, str], resuming: bool) -> list[str]:
        args = [arg.format_map(values) for arg in self.spec.command]
        if resuming:
            args += [arg.format_map(values) for arg in self.spec.resume_args]
        return args

    def placeholders(self, ctx: JobContext, latest: Path | None) -> dict[str, str]:
        return {
            "output_dir": str(self.output_dir),
            "latest_checkpoint": str(latest) if latest else "",
            "job_dir": str(self.paths.home),
            "work_dir": str(self.paths.work),
            "name": self.spec.name,
            "session_id": ctx.session_id,
            "python": sys.executable,
        }

    def run(self, ctx: JobContext) -> RunOutcome:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.is_done():
            return Completed(f"{self.spec.done_when} present")
        cps = self.checkpoints(ctx.session_id)
        latest = None
        if cps is not None:
            point = cps.resume()
            if point is not None:
                latest = point.path
                ctx.log.info("resuming from %s%s", point.candidate.label, " (restored)" if point.restored else "")
                ctx.record_event("resume_from", checkpoint=point.candidate.name, counter=point.candidate.counter,
                                 restored=point.restored)
        if cps is not None and self.spec.local_output:
            cps.start_sync(on_published=lambda r: ctx.report_checkpoint(r.name, r.counter, size=r.size, key=r.key),
                           on_paused=lambda why, seconds: ctx.record_event("store_paused", reason=why,
                                                                           seconds=seconds))
            watcher = None
        else:
            watcher = _CheckpointWatcher(self, ctx)
        try:
            return self._run_process(ctx, latest, watcher)
        finally:
            if cps is not None and self.spec.local_output and not cps.stop_sync(flush_timeout=FLUSH_TIMEOUT):
                ctx.log.warning("some checkpoints were not copied to the store within %.0fs", FLUSH_TIMEOUT)

    def _run_process(self, ctx: JobContext, latest: Path | None, watcher: _CheckpointWatcher | None) -> RunOutcome:
        values = self.placeholders(ctx, latest)
        argv = self.argv(values, resuming=latest is not None)
        env = {key: value.format_map(values) for key, value in self.spec.env.items()}
        ctx.log.info("launching: %s", " ".join(argv))
        proc = ManagedProcess(argv, ctx.process_log("command"), cwd=self.spec.cwd, env=env)
        ctx.record_event("process_start", pid=proc.pid, argv=argv)
        progress = re.compile(self.spec.progress.pattern) if self.spec.progress else None
        while True:
            code = proc.wait(POLL_SECONDS)
            self._follow_output(ctx, progress, proc.new_lines())
            if watcher is not None:
                watcher.poll()
            if code is not None:
                break
            reason = ctx.stop_requested()
            if reason:
                ctx.log.info("stopping the program (%s): sending %s", reason, self.spec.stop_signal)
                code = proc.stop(getattr(signal, self.spec.stop_signal), self.spec.stop_timeout)
                if watcher is not None:
                    watcher.poll()
                ctx.record_event("process_end", pid=proc.pid, exit_code=code, stopped_for=reason)
                if self.is_done():
                    return Completed(f"{self.spec.done_when} present")
                return Stopped(reason)
        self._follow_output(ctx, progress, proc.new_lines())
        tail = proc.tail(20)
        proc.close()
        ctx.record_event("process_end", pid=proc.pid, exit_code=code)
        if code != 0:
            return Crashed(f"exit code {code}", exit_code=code, log_tail=tail)
        if self.spec.done_when is not None and not self.is_done():
            return Crashed(f"exited 0 but {self.spec.done_when} was not written in the output folder",
                           exit_code=0, log_tail=tail)
        return Completed("exit code 0" + (f", {self.spec.done_when} present" if self.spec.done_when else ""))

    def _follow_output(self, ctx: JobContext, pattern: re.Pattern[str] | None, lines: list[str]) -> None:
        for line in lines:
            if self.spec.echo_output and line.strip():
                ctx.show(line)
            match = pattern.search(line) if pattern is not None else None
            if match is None:
                continue
            groups = match.groupdict()
            assert self.spec.progress is not None
            total = int(groups["total"]) if groups.get("total") else self.spec.progress.total
            ctx.report_progress(int(groups["counter"]), total, self.spec.progress.unit)


class _CheckpointWatcher:
    """Reports each new checkpoint the program writes into a durable output folder (one glob per poll)."""

    def __init__(self, job: CommandJob, ctx: JobContext) -> None:
        self.job, self.ctx = job, ctx
        self.seen: tuple[str, int, float] | None = None
        latest = self.latest()
        if latest is not None:
            self.seen = (latest.name, latest.size, latest.modified)

    def latest(self) -> Candidate | None:
        if self.job.spec.checkpoints is None:
            return None
        found = scan_checkpoints(self.job.output_dir, self.job.spec.checkpoints)
        return found[0] if found else None

    def poll(self) -> None:
        latest = self.latest()
        if latest is None:
            return
        key = (latest.name, latest.size, latest.modified)
        if key != self.seen:
            self.seen = key
            self.ctx.report_checkpoint(latest.name, latest.counter, size=latest.size)
