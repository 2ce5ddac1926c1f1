"""Job kinds: ``command`` (any program), ``darknet`` (training), ``face_detection`` (RetinaFace)."""

from __future__ import annotations

from jobs.base import Completed, Crashed, JobContext, JobKind, RunOutcome, Step, Stopped

__all__ = ["Completed", "Crashed", "JobContext", "JobKind", "RunOutcome", "Step", "Stopped"]
