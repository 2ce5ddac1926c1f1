"""DriveStore under injected Drive faults: survives transient ones, stops on quota, never publishes a torn object."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints.drive_retry import DriveRetry
from checkpoints.drive_store import DriveStore
from orchestrator.core.errors import QuotaExceededError, StorageError
from tests.checkpoints.drive_server import DriveFake, loopback_store

KIB = 1024
CHUNK = 256 * KIB
SIZE = 8 * CHUNK + 12345  # nine chunks, the last one short


@pytest.fixture
def fake() -> Iterator[DriveFake]:
    server = DriveFake().start()
    yield server
    server.stop()


@pytest.fixture
def store(fake: DriveFake) -> DriveStore:
    return loopback_store(fake, fake.add_folder("store"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "big src.weights"
    path.write_bytes(os.urandom(SIZE))
    return path


def _assert_published(store: DriveStore, fake: DriveFake, src: Path, key: str) -> None:
    entry = store.stat(key)
    assert entry is not None and entry.size == SIZE
    published = [f for f in fake.files.values() if f.properties.get("orch_key") == key]
    assert len(published) == 1 and published[0].content == src.read_bytes()
    assert not [f for f in fake.files.values() if "orch_pending" in f.properties], "pending leftovers"


# -- transient faults on every kind of request ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504", "rateLimitExceeded", "userRateLimitExceeded"])
@pytest.mark.parametrize("on", ["upload_start", "chunk", "create", "list"])
def test_upload_survives_transient_http_faults(
    fake: DriveFake, store: DriveStore, src: Path, kind: str, on: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake.inject(kind, on=on, times=2, skip=2 if on == "chunk" else 0)
    with caplog.at_level(logging.WARNING, logger="orchestrator.checkpoints.drive_retry"):
        store.upload(src, "ckpt/w.weights")
    assert not fake.faults, "the faults were not hit"
    _assert_published(store, fake, src, "ckpt/w.weights")
    assert "retry 2 of" in caplog.text


@pytest.mark.parametrize("kind", ["429", "503", "rateLimitExceeded", "drop"])
@pytest.mark.parametrize("on", ["get", "media", "list", "delete", "upload_multipart"])
def test_small_objects_survive_faults(fake: DriveFake, store: DriveStore, kind: str, on: str, tmp_path: Path) -> None:
    store.write_bytes("state/m.json", b"v1")
    fake.inject(kind, on=on, times=2)
    if on == "delete":
        store.write_bytes("state/other.json", b"gone soon")
        store.delete("state/other.json")
        expected = b"v1"
    elif on == "upload_multipart":
        store.write_bytes("state/m.json", b"v2")
        expected = b"v2"
    else:
        expected = b"v1"
        assert store.stat("state/m.json") is not None
        assert [e.key for e in store.list("state/")] == ["state/m.json"]
    store.download("state/m.json", tmp_path / "m.json")
    assert (tmp_path / "m.json").read_bytes() == expected
    assert not fake.faults, "the faults were not hit"
    # a write retried after a lost answer may leave a duplicate, but readers still see exactly one object
    assert [e.key for e in store.list("")] == ["state/m.json"]


def test_download_survives_faults_mid_file(fake: DriveFake, store: DriveStore, src: Path, tmp_path: Path) -> None:
    store.upload(src, "ckpt/w.weights")
    fake.inject("503", on="media", skip=3)
    fake.inject("drop", on="media", skip=1)
    fake.inject("429", on="media", skip=1)
    dest = tmp_path / "restore" / "w.weights"
    entry = store.download("ckpt/w.weights", dest)
    assert dest.read_bytes() == src.read_bytes() and entry.size == SIZE
    assert not fake.faults
    assert fake.count("media") == 9 + 3, "each failed range is fetched again, nothing else"


def test_persistent_failure_gives_up_after_bounded_attempts(fake: DriveFake, store: DriveStore) -> None:
    fake.inject("503", on="list", times=100)
    started = time.monotonic()
    with pytest.raises(StorageError, match="listing of '' failed: HTTP 503"):
        store.list("")
    assert time.monotonic() - started < 5
    assert fake.count("list") == store.retry.attempts


# -- dropped connections and resume -----------------------------------------------------------------------


@pytest.mark.parametrize("drop_after", [0, 100 * KIB, CHUNK + 50 * KIB, 2 * CHUNK - 1])
def test_dropped_connection_mid_chunk_resumes_and_resends_at_most_the_chunk_in_flight(
    fake: DriveFake, src: Path, drop_after: int
) -> None:
    store = loopback_store(fake, fake.add_folder(), chunk_size=2 * CHUNK)
    fake.inject("drop", on="chunk", skip=2, drop_after=drop_after)  # the third chunk: bytes 1 MiB..1.5 MiB
    store.upload(src, "ckpt/w.weights")
    assert not fake.faults
    _assert_published(store, fake, src, "ckpt/w.weights")
    resent = fake.chunk_bytes_received - SIZE
    assert 0 <= resent <= 2 * CHUNK, f"re-sent {resent} bytes; the chunk in flight was {2 * CHUNK}"
    # Drive kept the whole 256 KiB units it received before the drop; only the rest was sent again
    assert resent == drop_after % CHUNK if drop_after >= CHUNK else resent == drop_after
    assert fake.status_queries == 1, "one status query after the drop, then on from Drive's offset"


def test_upload_survives_repeated_drops_and_failing_status_queries(
    fake: DriveFake, store: DriveStore, src: Path
) -> None:
    fake.inject("drop", on="chunk", skip=4, drop_after=10 * KIB)
    fake.inject("503", on="chunk")  # the status query after the drop
    fake.inject("drop", on="chunk", drop_after=CHUNK - 1)  # the status query again
    fake.inject("drop", on="chunk", drop_after=200 * KIB)  # and the re-sent chunk
    store.upload(src, "ckpt/w.weights")
    assert not fake.faults
    _assert_published(store, fake, src, "ckpt/w.weights")
    assert fake.chunk_bytes_received - SIZE <= 10 * KIB + 200 * KIB


def test_connection_closed_silently_between_chunks(fake: DriveFake, store: DriveStore, src: Path) -> None:
    """An idle kept-alive connection closed by the far end (proxies, load balancers): the next chunk finds a
    dead socket; the upload goes on from Drive's offset and no request body goes out short."""
    fake.inject("stale", on="chunk", skip=7)  # dies after the 8th chunk; the 9th is the short tail
    store.upload(src, "ckpt/w.weights")
    assert not fake.faults
    _assert_published(store, fake, src, "ckpt/w.weights")
    assert fake.short_bodies == 0, "a request body went out shorter than its Content-Length"
    assert fake.chunk_bytes_received - SIZE <= SIZE % CHUNK


@pytest.mark.parametrize("on", ["upload_multipart", "upload_start", "chunk", "delete"])
def test_lost_replies_leave_one_published_object(fake: DriveFake, store: DriveStore, src: Path, on: str) -> None:
    """Drive did the work but the answer never arrived: the retry must not leave two objects or a torn one."""
    store.write_bytes("ckpt/w.weights", b"previous")
    fake.inject("lost_reply", on=on, skip=3 if on == "chunk" else 0)
    if on == "upload_multipart":
        store.write_bytes("ckpt/w.weights", b"small v2")
        expected = b"small v2"
    else:
        store.upload(src, "ckpt/w.weights")
        expected = src.read_bytes()
    assert not fake.faults
    assert store.read_bytes("ckpt/w.weights") == expected
    fresh = loopback_store(fake, store.folder_id)
    assert fresh.read_bytes("ckpt/w.weights") == expected
    assert [e.key for e in fresh.list("")] == ["ckpt/w.weights"]
    # an orphaned session creates no file; a duplicate from a re-sent multipart create is cleaned up
    assert [f.content for f in fake.objects()] == [expected]


def test_expired_upload_session_restarts_the_upload(fake: DriveFake, store: DriveStore, src: Path) -> None:
    fake.inject("session_expired", on="chunk", skip=4)
    store.upload(src, "ckpt/w.weights")
    assert not fake.faults
    _assert_published(store, fake, src, "ckpt/w.weights")
    assert fake.count("upload_start") == 2
    # the four accepted chunks and the refused fifth are sent again: Drive kept nothing of the old session
    assert fake.chunk_bytes_received == SIZE + 5 * CHUNK


def test_upload_session_that_keeps_expiring_gives_up(fake: DriveFake, store: DriveStore, src: Path) -> None:
    fake.inject("session_expired", on="chunk", times=10)
    with pytest.raises(StorageError, match="expired 3 times"):
        store.upload(src, "ckpt/w.weights")
    assert store.stat("ckpt/w.weights") is None


def test_drop_on_resumable_start_and_publish(fake: DriveFake, store: DriveStore, src: Path) -> None:
    fake.inject("drop", on="upload_start", drop_after=5)
    fake.inject("drop", on="create")
    store.upload(src, "ckpt/w.weights")
    _assert_published(store, fake, src, "ckpt/w.weights")


def test_an_abandoned_upload_publishes_nothing(fake: DriveFake, store: DriveStore, src: Path) -> None:
    store.write_bytes("ckpt/w.weights", b"previous version")
    fake.inject("drop", on="chunk", skip=3, times=100, drop_after=1000)
    with pytest.raises(StorageError, match="network"):
        store.upload(src, "ckpt/w.weights")
    assert store.read_bytes("ckpt/w.weights") == b"previous version"
    assert [e.size for e in store.list("")] == [16]


# -- quota ------------------------------------------------------------------------------------------------


def test_daily_upload_cap_raises_quota_exceeded_in_bounded_time(fake: DriveFake, store: DriveStore, src: Path) -> None:
    store.write_bytes("ckpt/w.weights", b"previous version")
    fake.daily_cap_after_bytes = 3 * CHUNK  # the cap hits mid-upload and never clears
    started = time.monotonic()
    with pytest.raises(QuotaExceededError, match="daily upload cap") as info:
        store.upload(src, "ckpt/w.weights")
    assert time.monotonic() - started < 5
    assert "24 h" in str(info.value)
    chunk_tries = fake.count("chunk")
    assert chunk_tries <= 3 + store.retry.cap_strikes + 1, "refusals are not retried forever"
    assert store.read_bytes("ckpt/w.weights") == b"previous version", "nothing half-published"


def test_daily_cap_counts_only_refusals_without_progress(fake: DriveFake, store: DriveStore, src: Path) -> None:
    # 3 refusals in a row (a chunk, then the two status queries that follow it), then a status query and a
    # chunk get through; four times over: 12 refusals, more than cap_strikes (4), but progress in between
    for skip in (0, 2, 2, 2):
        fake.inject("userRateLimitExceeded", on="chunk", times=3, skip=skip)
    store.upload(src, "ckpt/w.weights")
    assert not fake.faults
    _assert_published(store, fake, src, "ckpt/w.weights")


def test_daily_limit_message_is_quota_at_once(fake: DriveFake, store: DriveStore, src: Path) -> None:
    from tests.checkpoints import drive_server

    drive_server.ERRORS["dailyLimitExceeded"] = (403, "usageLimits", "dailyLimitExceeded", "Daily Limit Exceeded")
    try:
        fake.inject("dailyLimitExceeded", on="chunk")
        with pytest.raises(QuotaExceededError, match="daily"):
            store.upload(src, "ckpt/w.weights")
        assert fake.count("chunk") == 1
    finally:
        del drive_server.ERRORS["dailyLimitExceeded"]


def test_service_account_without_storage_is_told_to_use_a_shared_drive(fake: DriveFake, src: Path) -> None:
    fake.service_account_without_quota = True
    folder = fake.add_folder("my drive folder")
    with pytest.raises(QuotaExceededError, match="shared_drive: true"):
        loopback_store(fake, folder).upload(src, "ckpt/w.weights")
    with pytest.raises(QuotaExceededError, match="shared drive"):
        loopback_store(fake, folder).write_bytes("m.json", b"{}")
    assert fake.count("upload_start") == 1, "storageQuotaExceeded is not retried"
    shared = loopback_store(fake, fake.add_folder("team", shared_drive=True), shared_drive=True)
    shared.upload(src, "ckpt/w.weights")
    assert shared.stat("ckpt/w.weights") is not None


def test_default_backoff_is_bounded_and_truncated() -> None:
    slept: list[float] = []
    retry = DriveRetry(sleep=slept.append)

    def always_reset() -> None:
        raise ConnectionResetError(104, "Connection reset by peer")

    with pytest.raises(StorageError, match="network"):
        retry.call(always_reset, "probe")
    assert len(slept) == retry.attempts - 1
    assert all(w <= retry.maximum for w in slept) and max(slept) == retry.maximum
    assert slept[0] <= retry.initial + retry.jitter


# -- end to end: a session syncs to Drive under faults, the machine vanishes, another one resumes ---------


def test_sync_to_drive_under_faults_then_resume_on_another_machine(fake: DriveFake, tmp_path: Path) -> None:
    from checkpoints.manifest import ManifestStore
    from checkpoints.restore import prepare_resume
    from checkpoints.sync import CheckpointSync

    folder_id = fake.add_folder("job store")
    out = tmp_path / "colab" / "backup"
    out.mkdir(parents=True)
    blobs = {n: os.urandom(3 * CHUNK + n) for n in (100, 200, 300)}
    # faults land on the background uploads: resets mid-chunk, 503s, rate limits, a stale connection
    fake.inject("drop", on="chunk", skip=1, drop_after=70 * KIB)
    fake.inject("503", on="chunk", skip=2)
    fake.inject("userRateLimitExceeded", on="upload", skip=3)
    fake.inject("stale", on="upload_multipart", skip=1)
    fake.inject("429", on="list", skip=5)
    manifests = ManifestStore(loopback_store(fake, folder_id), session="colab-1")
    with CheckpointSync(out, manifests, patterns=("*.weights",), poll_interval=0.02, stable_polls=1) as sync:
        for counter, blob in blobs.items():
            (tmp_path / "tmp.weights").write_bytes(blob)
            os.replace(tmp_path / "tmp.weights", out / f"micro_{counter}.weights")
        assert sync.flush(timeout=30)
    assert not fake.faults, "every fault was hit"
    # the machine is gone; a new one (no local files, no remembered IDs) resumes from Drive
    elsewhere = loopback_store(fake, folder_id)
    fresh_dir = tmp_path / "kaggle" / "backup"
    fresh_dir.mkdir(parents=True)
    point = prepare_resume(elsewhere, ManifestStore(elsewhere).load(), fresh_dir)
    assert point is not None and point.restored
    assert point.candidate.counter == 300
    assert point.path.read_bytes() == blobs[300]
