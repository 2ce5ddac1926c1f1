"""The ``command`` job kind: run a program, watch its checkpoints, resume it from the newest one."""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path
from typing import Any

from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Stopped
from jobs.command.checkpoints import FoundCheckpoint, scan_checkpoints
from jobs.command.spec import CommandSpec
from orchestrator.process import ManagedProcess

POLL_SECONDS = 0.2


class CommandJob(JobKind):
    kind = "command"
    spec: CommandSpec

    @property
    def output_dir(self) -> Path:
        return self.paths.output

    def latest_checkpoint(self) -> FoundCheckpoint | None:
        if self.spec.checkpoints is None or not self.output_dir.is_dir():
            return None
        found = scan_checkpoints(self.output_dir, self.spec.checkpoints)
        return found[0] if found else None

    def is_done(self) -> bool:
        return self.spec.done_when is not None and (self.output_dir / self.spec.done_when).exists()

    def argv(self, ctx: JobContext, latest: FoundCheckpoint | None) -> list[str]:
        values = self._placeholders(ctx, latest)
        args = [arg.format_map(values) for arg in self.spec.command]
        if latest is not None:
            args += [arg.format_map(values) for arg in self.spec.resume_args]
        return args

    def _placeholders(self, ctx: JobContext, latest: FoundCheckpoint | None) -> dict[str, str]:
        return {
            "output_dir": str(self.output_dir),
            "latest_checkpoint": str(latest.path) if latest else "",
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
        latest = self.latest_checkpoint()
        if latest is not None:
            ctx.log.info("resuming from %s", latest.path.name)
            ctx.record_event("resume_from", checkpoint=latest.path.name, counter=latest.counter)
        argv = self.argv(ctx, latest)
        values = self._placeholders(ctx, latest)
        env = {key: value.format_map(values) for key, value in self.spec.env.items()}
        ctx.log.info("launching: %s", " ".join(argv))
        proc = ManagedProcess(argv, ctx.process_log("command"), cwd=self.spec.cwd, env=env)
        ctx.record_event("process_start", pid=proc.pid, argv=argv)
        watcher = _CheckpointWatcher(self, ctx, latest)
        progress = re.compile(self.spec.progress.pattern) if self.spec.progress else None
        while True:
            code = proc.wait(POLL_SECONDS)
            self._follow_output(ctx, progress, proc.new_lines())
            watcher.poll()
            if code is not None:
                break
            reason = ctx.stop_requested()
            if reason:
                ctx.log.info("stopping the program (%s): sending %s", reason, self.spec.stop_signal)
                code = proc.stop(getattr(signal, self.spec.stop_signal), self.spec.stop_timeout)
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

    def status_extra(self) -> dict[str, Any]:
        return {"output_dir": str(self.output_dir)}


class _CheckpointWatcher:
    """Reports each new checkpoint the program writes (a glob of one folder per poll; cheap)."""

    def __init__(self, job: CommandJob, ctx: JobContext, latest: FoundCheckpoint | None) -> None:
        self.job, self.ctx = job, ctx
        self.seen = (latest.path.name, latest.size, latest.mtime) if latest else None

    def poll(self) -> None:
        latest = self.job.latest_checkpoint()
        if latest is None:
            return
        key = (latest.path.name, latest.size, latest.mtime)
        if key != self.seen:
            self.seen = key
            self.ctx.report_checkpoint(latest.path.name, latest.counter, size=latest.size)
