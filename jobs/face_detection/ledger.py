"""The durable record of a face job: committed chunks and published outputs, in the job's store.

Every chunk is committed through the job's ``store:`` (a path store, e.g. on the Drive mount, or the Drive API
store on Kaggle or a laptop) as one manifest record (``checkpoints.manifest``: sequence reserved, upload
verified, record added last), so a session on another machine resumes from whatever the store holds, and
``orchestrator checkpoints`` lists the chunks. Record names::

    <input>.<fp8>.<index>.chunk     one committed chunk (chunks.py: header, detections, video segment)
    <input>.detections.jsonl        final outputs, tagged ``final``; also written to <job home>/<output>/
    <input>.annotated.mp4           (or .avi, .partN.avi; images: .annotated.jpg)
    <input>.summary.json            "done" for the fingerprint inside it
    <input>.failed.json             the input failed (reason inside); not retried while the fingerprint matches

Publishing joins the chunks (in index order) into the final files in the output folder, uploads them, and then
records them and forgets the chunks in one manifest write, deleting the chunks' objects only after it: a kill
at any point leaves either the chunks or the outputs. One
process writes a ledger (the lease holder); in it, several inputs' threads may commit and publish at once: the
ledger's lock guards its records (held only to read or change them, never across an upload: on the Drive
mount an upload takes seconds), the manifest store's lock its writes. The chunk records are kept in memory
after one manifest read at start. Retention never applies (``retain=False``): every chunk is
needed until its input is published, and the final outputs are kept.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checkpoints.job_checkpoints import JobCheckpoints
from checkpoints.manifest import CHECKPOINT_PREFIX, ManifestRecord, store_holds
from jobs.face_detection.chunks import ChunkResult, InputChunks, InputStatus, chunk_record_name, parse_chunk_record_name
from jobs.face_detection.paths import FacePaths
from jobs.face_detection.video_out import join_segments, video_file_name, write_image
from jobs.face_detection.video_source import SourceInfo, truncation_reason
from orchestrator.core.atomic import atomic_write_json, atomic_write_text, is_temp_name
from orchestrator.core.errors import StorageError
from orchestrator.core.paths import JobPaths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputOutcome:
    """What finishing (or finding finished) an input came to."""

    status: InputStatus
    reason: str = ""
    frames: int = 0
    faces: int = 0
    fps: float = 0.0


def summary_name(name: str) -> str:
    return f"{name}.summary.json"


def failed_name(name: str) -> str:
    return f"{name}.failed.json"


def detections_name(name: str) -> str:
    return f"{name}.detections.jsonl"


def _is_output_of(record_name: str, name: str) -> bool:
    return record_name.startswith(f"{name}.") and parse_chunk_record_name(record_name) is None and (
        record_name in (summary_name(name), failed_name(name), detections_name(name))
        or record_name.startswith(f"{name}.annotated.")
    )


class FaceLedger:
    """Chunks and outputs of every input of one face job, through its :class:`JobCheckpoints`."""

    def __init__(self, checkpoints: JobCheckpoints, paths: FacePaths, logger: logging.Logger | None = None) -> None:
        self.checkpoints = checkpoints
        self.store = checkpoints.store
        self.manifests = checkpoints.manifests
        self.paths = paths
        self.output_dir = paths.output
        self.staging = paths.staging
        self.log = logger or log
        self._lock = threading.RLock()
        self._records: dict[str, ManifestRecord] = {}
        self._headers: dict[str, dict[str, Any]] = {}
        self._committing: set[str] = set()  # chunk records being uploaded (outside the lock)

    @classmethod
    def in_folder(cls, folder: Path) -> FaceLedger:
        """A ledger with a path store in ``folder/store``, outputs in ``folder/output`` (benchmarks, tests)."""
        from checkpoints.path_store import PathStore

        paths = FacePaths(JobPaths(home=folder, local=folder / "work"))
        return cls(JobCheckpoints(PathStore(folder / "store"), paths.staging), paths).open()

    def open(self) -> FaceLedger:
        """Check the store, sweep leftovers of a killed copy, read the manifest once."""
        self.store.check_usable()
        swept = self.store.sweep_leftovers()
        if swept:
            self.log.info("store: removed %d partial object(s) left by an interrupted copy", swept)
        shutil.rmtree(self.staging, ignore_errors=True)  # scratch of a writer killed mid-copy (we hold the lease)
        self.staging.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.output_dir.iterdir():  # temp files of an output write cut by kill -9
            if is_temp_name(leftover.name):
                leftover.unlink(missing_ok=True)
        self._records.update(self.manifests.load().latest_by_name())
        lost = self._not_held(list(self._records.values()))
        if lost:  # the manifest reached the store, these objects did not (a lazy mount) or were deleted since
            self.log.warning("store: %d recorded object(s) are missing from %s (%s); they are made again",
                             len(lost), self.store, ", ".join(sorted(r.name for r in lost)[:5]))
            self._forget({r.name: r for r in lost})
            for record in lost:  # an output whose object is gone makes its input unfinished: redo it whole
                owner = self._owner(record.name)
                if owner is not None:
                    self._forget({n: r for n, r in self._records.items() if _is_output_of(n, owner)})
        return self

    def _not_held(self, records: list[ManifestRecord]) -> list[ManifestRecord]:
        """The records whose object the store does not hold with its size: one listing, then a ``stat`` of each
        record the listing lacks (a Drive API listing shows new files only after a delay; ``stat`` does not)."""
        listed = {entry.key: entry.size for entry in self.store.list(CHECKPOINT_PREFIX)}
        return [record for record in records if not store_holds(self.store, record, listed)]

    def _owner(self, record_name: str) -> str | None:
        """The input an output record belongs to (None for chunks and other records)."""
        for suffix in (".summary.json", ".failed.json", ".detections.jsonl"):
            if record_name.endswith(suffix):
                return record_name[: -len(suffix)]
        if ".annotated." in record_name and parse_chunk_record_name(record_name) is None:
            return record_name.split(".annotated.", 1)[0]
        return None

    def missing_result(self, names: list[str]) -> str | None:
        """For a job recorded completed: which input has no finished record, or whose outputs are gone from the
        store; None when every input's result is there. Reads only (no lease needed)."""
        records = self.manifests.load().latest_by_name()
        for name in names:
            if summary_name(name) not in records and failed_name(name) not in records:
                return f"the store {self.store} holds no result for input {name}"
        outputs = [r for n, r in records.items() if any(_is_output_of(n, name) for name in names)]
        gone = self._not_held(outputs)
        if gone:
            shown = ", ".join(sorted(r.name for r in gone)[:5])
            return f"{len(gone)} of its outputs are gone from the store {self.store} ({shown})"
        return None

    # -- reading -------------------------------------------------------------------------------------------

    def chunks(self, name: str, fingerprint: str) -> InputChunks:
        """The committed chunks of ``name`` made with ``fingerprint``."""
        committed: set[int] = set()
        end: int | None = None
        prefix = fingerprint[:8]
        with self._lock:
            for record_name in self._records:
                parsed = parse_chunk_record_name(record_name)
                if parsed is None or parsed[0] != name or parsed[1] != prefix:
                    continue
                committed.add(parsed[2])
        for index in sorted(committed):
            if self._header(name, fingerprint, index)["end_of_stream"]:
                end = index
                break
        return InputChunks(frozenset(committed), end)

    def _header(self, name: str, fingerprint: str, index: int) -> dict[str, Any]:
        """The header of a committed chunk (counters, end of stream), read once and then kept."""
        record_name = chunk_record_name(name, fingerprint, index)
        header = self._headers.get(record_name)
        if header is None:
            record = self._records[record_name]
            local = self.store.local_path(record.key)
            if local is not None:
                with open(local, "rb") as fh:
                    line = fh.readline()
            else:
                line = self._read(record).split(b"\n", 1)[0]
            try:
                header = self._headers[record_name] = json.loads(line)
            except ValueError as exc:
                raise StorageError(f"committed chunk {record.key} in {self.store} is unreadable ({exc})") from exc
        return header

    def read_chunk(self, name: str, fingerprint: str, index: int) -> ChunkResult:
        record = self._records[chunk_record_name(name, fingerprint, index)]
        try:
            return ChunkResult.from_bytes(self._read(record))
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"committed chunk {record.key} in {self.store} is unreadable ({exc})") from exc

    def _read(self, record: ManifestRecord) -> bytes:
        local = self.store.local_path(record.key)
        if local is not None:
            return local.read_bytes()
        return self.store.read_bytes(record.key)

    def finished(self, name: str, fingerprint: str) -> str | None:
        """``"done"``/``"failed"`` when ``name`` was finished with ``fingerprint`` (its final files are then
        present in the output folder, restored from the store after a move to a blank machine), else None."""
        for state, record_name in (("done", summary_name(name)), ("failed", failed_name(name))):
            record = self._records.get(record_name)
            if record is None:
                continue
            local = self.paths.output_file(record_name)
            data = local.read_bytes() if local.is_file() and local.stat().st_size == record.size else None
            if data is None:
                data = self._read(record)
            try:
                matches = json.loads(data).get("fingerprint") == fingerprint
            except (ValueError, AttributeError):
                matches = False
            if matches:
                self._restore_outputs(name)
                return state
        return None

    def outcome(self, name: str) -> InputOutcome:
        """The recorded outcome of a finished input (after :meth:`finished`)."""
        for state, record_name in (("done", summary_name(name)), ("failed", failed_name(name))):
            if record_name in self._records:
                doc = json.loads(self.paths.output_file(record_name).read_text(encoding="utf-8"))
                if state == "failed":
                    return InputOutcome(InputStatus.FAILED, str(doc.get("reason", "")))
                return InputOutcome(InputStatus.DONE, frames=int(doc.get("frames_processed", 0)),
                                    faces=int(doc.get("faces_total", 0)), fps=float(doc.get("fps_achieved", 0.0)))
        raise StorageError(f"{name} has no recorded outcome in {self.store}")

    def _restore_outputs(self, name: str) -> None:
        for record_name, record in list(self._records.items()):
            if not _is_output_of(record_name, name):
                continue
            target = self.paths.output_file(record_name)
            if target.is_file() and target.stat().st_size == record.size:
                continue
            self.log.info("restoring %s from %s", record_name, self.store)
            self.store.download(record.key, target)

    # -- writing -------------------------------------------------------------------------------------------

    def commit(self, chunk: ChunkResult) -> ManifestRecord | None:
        """Commit ``chunk`` durably (exactly once: None if that chunk is already committed)."""
        name = chunk.record_name
        with self._lock:
            if name in self._records or name in self._committing:
                self.log.warning("chunk %s is already committed; the duplicate is dropped", name)
                return None
            self._committing.add(name)
        try:  # the upload and the manifest write outside the ledger's lock: other inputs commit meanwhile
            staged, data = self.staging / name, chunk.to_bytes()
            staged.write_bytes(data)  # scratch (the store's copy is the durable one): no fsync, no rename
            try:
                record = self.manifests.publish(staged, name, counter=chunk.index, retain=False)
            finally:
                staged.unlink(missing_ok=True)
            with self._lock:
                self._records[name] = record
                self._headers[name] = json.loads(data.split(b"\n", 1)[0])
            return record
        finally:
            with self._lock:
                self._committing.discard(name)

    def discard_stale(self, name: str, fingerprint: str) -> None:
        """Forget and delete chunks of ``name`` made with another fingerprint (other settings or input)."""
        prefix = fingerprint[:8]
        with self._lock:
            stale = {n: r for n, r in self._records.items()
                     if (p := parse_chunk_record_name(n)) is not None and p[0] == name and p[1] != prefix}
            self._forget(stale)

    def _forget(self, records: dict[str, ManifestRecord]) -> None:
        if not records:
            return
        self.manifests.forget({r.key for r in records.values()})
        for record_name in records:
            self._records.pop(record_name, None)
            self._headers.pop(record_name, None)
        self._delete_objects(records.values())

    def _delete_objects(self, records: Iterable[ManifestRecord]) -> None:
        """Delete the objects of records the manifest no longer names."""
        for record in records:
            try:
                self.store.delete(record.key)
            except StorageError as exc:  # forgotten already: at worst an orphan object is left
                self.log.warning("could not delete %s from %s: %s", record.key, self.store, exc)

    def _publish_outputs(self, paths: list[Path], name: str) -> None:
        """Publish ``paths`` (outputs of input ``name``) and forget its chunks, its failure record and the older
        records of the same names, in ONE manifest write (a reader sees the chunks or the outputs, never a
        mix); the forgotten objects are deleted after it."""
        published = {p.name for p in paths}
        with self._lock:
            drop = {n: r for n, r in self._records.items()
                    if n in published or n == failed_name(name)
                    or ((c := parse_chunk_record_name(n)) is not None and c[0] == name)}
        records = self.manifests.publish_all([(p, p.name, ("final",)) for p in paths],
                                             forget={r.key for r in drop.values()})
        with self._lock:
            for record_name in drop:
                self._records.pop(record_name, None)
                self._headers.pop(record_name, None)
            for record in records:
                self._records[record.name] = record
        self._delete_objects(drop.values())

    def finish(self, name: str, fingerprint: str, input_path: Path, facts: dict[str, Any], video_format: str,
               image: bool = False) -> InputOutcome:
        """Publish a complete input (or record it failed if its source was truncated); see the module doc.
        Called by the input's own thread (no other thread commits its chunks meanwhile)."""
        state = self.chunks(name, fingerprint)
        assert state.complete and state.end is not None
        chunks = [self.read_chunk(name, fingerprint, i) for i in range(state.end + 1)]
        last, source = chunks[-1], chunks[0].source
        info = SourceInfo(source.width, source.height, source.fps, source.declared_frames)
        reason = None if image else truncation_reason(info, last.source_frames)
        if reason is not None:
            self.record_failure(name, fingerprint, reason)
            return InputOutcome(InputStatus.FAILED, reason)
        frames = sum(c.frames for c in chunks)
        faces = sum(c.faces for c in chunks)
        seconds = sum(c.seconds for c in chunks)
        out_fps = source.fps / int(facts.get("frame_step", 1)) if source.fps else 0.0
        target = self.paths.output_file(video_file_name(name, video_format, image))
        segments = (c.video for c in chunks if c.video)
        if video_format == "none":  # detections and the summary only
            videos = []
        elif image:
            videos = write_image(chunks[0].video, target)
        elif frames:
            videos = join_segments(video_format, segments, target, source.width, source.height, out_fps)
        else:
            videos = []
        detections = self.paths.output_file(detections_name(name))
        atomic_write_text(detections, b"".join(c.detections for c in chunks).decode("utf-8"))
        summary = {
            **facts,
            "fingerprint": fingerprint,
            "name": name,
            "status": "done",
            "width": source.width,
            "height": source.height,
            "inference_size": [source.inference_width, source.inference_height],
            "source_fps": source.fps,
            "source_frames": last.source_frames,
            "frames_processed": frames,
            "faces_total": faces,
            "faces_per_frame_mean": round(faces / frames, 4) if frames else 0.0,
            "faces_per_frame_max": max(c.max_faces for c in chunks),
            "frames_with_faces": sum(c.frames_with_faces for c in chunks),
            "processing_seconds": round(seconds, 3),
            "fps_achieved": round(frames / seconds, 3) if seconds > 0 else 0.0,
            "detections_file": detections.name,
            "video_files": [p.name for p in videos],
        }
        summary_file = self.paths.output_file(summary_name(name))
        atomic_write_json(summary_file, summary)
        self._publish_outputs([*videos, detections, summary_file], name)
        self.paths.output_file(failed_name(name)).unlink(missing_ok=True)
        return InputOutcome(InputStatus.DONE, frames=frames, faces=faces, fps=summary["fps_achieved"])

    def record_failure(self, name: str, fingerprint: str, reason: str) -> None:
        path = self.paths.output_file(failed_name(name))
        atomic_write_json(path, {"fingerprint": fingerprint, "reason": reason, "input": name})
        self._publish_outputs([path], name)

    def committed_frames(self, name: str, fingerprint: str) -> int:
        """Processed frames in the committed chunks of ``name`` (for progress after a resume)."""
        state = self.chunks(name, fingerprint)
        return sum(int(self._header(name, fingerprint, i)["frames"]) for i in state.committed)


__all__ = ["FaceLedger", "InputOutcome", "detections_name", "failed_name", "summary_name"]
