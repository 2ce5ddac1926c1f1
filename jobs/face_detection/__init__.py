"""The ``face_detection`` job kind: RetinaFace (or a Haar cascade) over videos and images, resumable by chunks.

Only the spec is re-exported here: ``jobs.registry`` imports ``jobs.face_detection.spec`` to validate job
files, and that must not pull in torch or OpenCV (a ``command`` job needs neither). The implementation lives
in the submodules (``job``, ``pipeline``, ``detector``, ``model``, ...), imported when a job runs; see
docs/face_detection.md for the map.
"""

from __future__ import annotations

from jobs.face_detection.spec import FaceDetectionSpec, ThresholdsSpec

__all__ = ["FaceDetectionSpec", "ThresholdsSpec"]
