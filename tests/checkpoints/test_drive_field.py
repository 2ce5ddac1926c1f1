"""What was seen with the Drive API store against a Drive that behaves like Drive (issue 10's first list), one
test per case: lagging listings, ghosts of deletes, the daily cap on small uploads, shared-drive roles and
incomplete searches, the credentials people have, request economy."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints.drive_auth import load_credentials
from checkpoints.drive_retry import DriveRetry
from checkpoints.drive_store import DriveStore
from checkpoints.job_checkpoints import JobCheckpoints
from checkpoints.manifest import Backoff, ManifestStore
from checkpoints.manifest_pin import ManifestPin
from checkpoints.retention import plan_retention
from checkpoints.sync import CheckpointSync
from orchestrator.core.errors import ConfigError, QuotaExceededError, StateError, StorageError
from orchestrator.core.store_spec import RetentionSpec
from tests.checkpoints.drive_server import DriveFake, loopback_store

KIB = 1024
QUICK = Backoff(attempts=6, initial=0.01, maximum=0.05)


@pytest.fixture
def fake() -> Iterator[DriveFake]:
    server = DriveFake().start()
    yield server
    server.stop()


def _store(fake: DriveFake, folder: str, **kwargs: object) -> DriveStore:
    kwargs.setdefault("backoff", QUICK)
    return loopback_store(fake, folder, **kwargs)  # type: ignore[no-any-return]


def _checkpoint(folder: Path, counter: int, size: int = 40 * KIB) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt-{counter:04d}.pt"
    path.write_bytes(os.urandom(size))
    return path


def _job(store: DriveStore, home: Path, work: Path, keep_last: int = 3) -> JobCheckpoints:
    return JobCheckpoints(
        store,
        work,
        session_id=work.parent.name,
        patterns=("ckpt-*.pt",),
        retention=RetentionSpec(keep_last=keep_last),
        pin=ManifestPin(home / "store-manifest.json"),
    )


# -- 1. listing lag and ghosts --------------------------------------------------------------------------------


def test_blank_vm_resume_inside_the_listing_lag_finds_the_manifest_and_never_reuses_a_sequence(
    fake: DriveFake, tmp_path: Path
) -> None:
    """Seen: "no valid checkpoint ... starting from scratch", then the new session's records replaced the old
    ones and sequence numbers were reused (00000001-c4.pt beside 00000001-c1.pt)."""
    fake.list_lag = 600  # nothing written in this test is ever listed
    folder = fake.add_folder("job store")
    first = _job(_store(fake, folder), tmp_path / "home 1", tmp_path / "vm 1" / "out")
    published = [first.manifests.publish(_checkpoint(tmp_path / "src", c), f"ckpt-{c:04d}.pt", c) for c in (1, 2)]

    # a blank VM: new process (no remembered IDs), empty home, empty work folder, listing still lagging
    second = _job(_store(fake, folder), tmp_path / "home 2", tmp_path / "vm 2" / "out")
    point = second.resume()
    assert point is not None and point.restored, "the blank VM must resume, not start from scratch"
    assert point.candidate.counter == 2
    assert point.path.read_bytes() == (tmp_path / "src" / "ckpt-0002.pt").read_bytes()
    third = second.manifests.publish(_checkpoint(tmp_path / "src", 3), "ckpt-0003.pt", 3)
    stored = [f for f in fake.objects() if f.properties["orch_key"].startswith("checkpoints/")]
    assert len(stored) == 3, "the earlier session's checkpoints are all still there"
    assert third.seq > max(r.seq for r in published), "sequence numbers are never reused"
    manifest = ManifestStore(_store(fake, folder)).load()
    assert sorted(r.counter for r in manifest.records) == [1, 2, 3]  # type: ignore[type-var]


def test_the_manifest_keeps_one_file_id_for_the_life_of_the_store(fake: DriveFake, tmp_path: Path) -> None:
    folder = fake.add_folder()
    manifests = ManifestStore(_store(fake, folder), recheck_every=0)
    ids = set()
    for counter in range(1, 6):
        manifests.publish(_checkpoint(tmp_path, counter), f"ckpt-{counter:04d}.pt", counter)
        ids |= {f.id for f in fake.objects() if f.properties.get("orch_key") == "manifest.json"}
    assert len(ids) == 1


def test_a_job_home_that_recorded_a_manifest_waits_for_a_lagging_store_then_stops_clearly(
    fake: DriveFake, tmp_path: Path
) -> None:
    """Never a fresh start: a manifest missing or older than the job home recorded is waited for."""
    folder = fake.add_folder()
    pin = ManifestPin(tmp_path / "home" / "store-manifest.json")
    ManifestStore(_store(fake, folder), pin=pin).publish(_checkpoint(tmp_path, 1), "ckpt-0001.pt", 1)
    recorded = pin.read()
    assert recorded is not None and recorded.revision >= 2
    # the store shows an older revision (another replica, a restore from backup): wait, then a clear error
    (manifest,) = [f for f in fake.objects() if f.properties.get("orch_key") == "manifest.json"]
    newest = manifest.content
    manifest.content = newest.replace(f'"revision": {recorded.revision}'.encode(), b'"revision": 1')
    slept: list[float] = []
    waiting = ManifestStore(_store(fake, folder), pin=pin, backoff=Backoff(attempts=3, initial=0.01, sleep=slept.append))
    with pytest.raises(StorageError, match=r"recorded manifest revision .*run again in a few minutes"):
        waiting.load()
    assert len(slept) == 3
    # the store catches up while we wait: the load succeeds with the newest manifest
    def catch_up(wait: float) -> None:
        manifest.content = newest

    patient = ManifestStore(_store(fake, folder), pin=pin, backoff=Backoff(attempts=3, initial=0.01, sleep=catch_up))
    assert [r.counter for r in patient.load().records] == [1]


def test_ghosts_of_deleted_files_are_waited_out(fake: DriveFake, tmp_path: Path) -> None:
    """Seen: "kept changing while it was read" after 25 immediate re-resolves while deleted files stayed listed."""
    folder = fake.add_folder()
    writer = _store(fake, folder)
    src = _checkpoint(tmp_path, 1)
    writer.upload(src, "state/w.bin")  # listed at once (no lag yet)
    fake.list_lag = 0.4  # from now on: new files listed after 0.4 s, deleted ones still listed for 0.4 s
    src.write_bytes(b"the second version")
    writer.upload(src, "state/w.bin")  # a new file; the old one is deleted but still listed
    reader = _store(fake, folder, backoff=Backoff(attempts=8, initial=0.05, maximum=0.2))
    assert reader.read_bytes("state/w.bin") == b"the second version"


# -- 2. the daily cap on every upload path --------------------------------------------------------------------


def test_daily_cap_on_a_multipart_upload_is_quota_within_seconds(fake: DriveFake) -> None:
    """Seen: multipart uploads and manifest writes used plain retries: 97 s of backoff, then StorageError."""
    slept: list[float] = []
    store = _store(fake, fake.add_folder(), retry=DriveRetry(sleep=slept.append))  # production backoff
    store.write_bytes("manifest.json", b"{}")
    fake.daily_cap_after_bytes = fake.bytes_received  # the cap is reached from here on
    with pytest.raises(QuotaExceededError, match="daily upload cap"):
        store.write_bytes("manifest.json", b'{"a": 1}')  # the in-place manifest update (multipart)
    assert sum(slept) < 15, f"{sum(slept):.0f} s of backoff before the cap was recognised"
    slept.clear()
    with pytest.raises(QuotaExceededError):
        store.write_bytes("small/new.bin", b"x" * 1000)  # a multipart create
    assert sum(slept) < 15


def test_sync_under_the_daily_cap_pauses_uploads_and_resumes_later(fake: DriveFake, tmp_path: Path) -> None:
    now = [1000.0]
    store = _store(fake, fake.add_folder())
    manifests = ManifestStore(store)
    out = tmp_path / "out"
    out.mkdir()
    sync = CheckpointSync(out, manifests, patterns=("ckpt-*.pt",), poll_interval=0.02, stable_polls=1,
                          clock=lambda: now[0])
    fake.daily_cap_after_bytes = 0
    with sync:
        _checkpoint(out, 1)
        deadline = time.monotonic() + 10
        while "quota" not in (sync.status().last_error or "") and time.monotonic() < deadline:
            time.sleep(0.02)
        status = sync.status()
        assert "quota" in (status.last_error or ""), status
        assert status.pending == ("ckpt-0001.pt",) and status.published == 0
        fake.daily_cap_after_bytes = None  # the cap resets; an hour later the sync tries again
        now[0] += 3601
        assert sync.flush(timeout=10)
        assert sync.status().published == 1 and sync.status().last_error is None


# -- 3. shared drives -------------------------------------------------------------------------------------


def test_a_content_manager_on_a_shared_drive_is_told_at_start_that_deletes_need_manager(fake: DriveFake) -> None:
    """Seen: deletes failed with insufficientFilePermissions; superseded files piled up, retention removed nothing."""
    folder = fake.add_folder("team", shared_drive=True)
    fake.set_shared_drive_role("fileOrganizer")  # "Content manager"
    store = _store(fake, folder, shared_drive=True)
    with pytest.raises(StorageError, match="Manager role"):
        store.check_usable()
    fake.set_shared_drive_role("organizer")
    store.check_usable()


def test_a_delete_refused_for_the_role_names_the_role(fake: DriveFake) -> None:
    folder = fake.add_folder("team", shared_drive=True)
    store = _store(fake, folder, shared_drive=True)
    store.write_bytes("ckpt/a.bin", b"x")
    fake.set_shared_drive_role("fileOrganizer")
    with pytest.raises(StorageError, match="needs the Manager role"):
        store.delete("ckpt/a.bin")


def test_shared_drive_listings_are_complete(fake: DriveFake) -> None:
    """Seen: corpora=allDrives answers may be incomplete; a key missing from one was treated as absent."""
    folder = fake.add_folder("team", shared_drive=True)
    writer = _store(fake, folder, shared_drive=True)
    keys = [f"ckpt/{i}.bin" for i in range(3)]
    for key in keys:
        writer.write_bytes(key, b"x")
    fresh = _store(fake, folder, shared_drive=True)
    assert sorted(e.key for e in fresh.list("")) == keys
    listed = [q for op, q in fake.requests if op == "list"]
    assert listed  # the store asked Drive (by corpora=drive with the driveId)
    fake.incomplete_searches = 2  # Drive could not search everything twice: retried
    assert sorted(e.key for e in _store(fake, folder, shared_drive=True).list("")) == keys
    fake.incomplete_searches = 100
    with pytest.raises(StorageError, match="incompleteSearch"):
        _store(fake, folder, shared_drive=True).list("")


# -- 4. credentials people have ---------------------------------------------------------------------------


def _to_json_token(expiry: str = "2099-01-01T00:00:00Z") -> dict[str, object]:
    """What ``google.oauth2.credentials.Credentials.to_json()`` writes (no "type")."""
    return {
        "token": "ya29.SECRET-TOKEN",
        "refresh_token": "1//SECRET-REFRESH",
        "token_uri": "https://oauth2.googleapis.com/token",
        "client_id": "123.apps.googleusercontent.com",
        "client_secret": "SECRET-CLIENT",
        "scopes": ["https://www.googleapis.com/auth/drive"],
        "universe_domain": "googleapis.com",
        "account": "",
        "expiry": expiry,
    }


def test_a_to_json_token_file_is_accepted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "token.json"
    path.write_text(json.dumps(_to_json_token()))
    with caplog.at_level("DEBUG"):
        creds = load_credentials(path)
    assert creds.token == "ya29.SECRET-TOKEN" and creds.valid, "a token with a future expiry is used as is"
    assert "SECRET" not in caplog.text


def test_credentials_as_content_in_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A Kaggle secret arrives as a string; ``credentials`` took only a path."""
    from orchestrator.core.store_spec import DriveStoreSpec

    monkeypatch.setenv("DRIVE_SA_JSON", json.dumps(_to_json_token()))
    spec = DriveStoreSpec(type="drive", folder_id="F", credentials_env="DRIVE_SA_JSON")
    with caplog.at_level("DEBUG"):
        creds = load_credentials(spec.credentials, spec.credentials_env)
    assert creds.refresh_token == "1//SECRET-REFRESH"
    assert "SECRET" not in caplog.text
    monkeypatch.setenv("DRIVE_SA_JSON", "not json {SECRET")
    with pytest.raises(ConfigError, match="DRIVE_SA_JSON are not JSON") as info:
        load_credentials(None, "DRIVE_SA_JSON")
    assert "SECRET" not in str(info.value)
    monkeypatch.delenv("DRIVE_SA_JSON")
    with pytest.raises(ConfigError, match="not set"):
        load_credentials(None, "DRIVE_SA_JSON")
    with pytest.raises(ValueError, match="not both"):
        DriveStoreSpec(type="drive", folder_id="F", credentials=tmp_path / "a.json", credentials_env="X")


# -- 6. request economy -----------------------------------------------------------------------------------


def test_a_steady_state_checkpoint_publish_takes_at_most_four_requests(fake: DriveFake, tmp_path: Path) -> None:
    """Seen: 34 requests per publish (5 creates, 5 patches, 4 deletes, 10 listings)."""
    store = _store(fake, fake.add_folder(), chunk_size=8 << 20)  # the default chunk: 300 KB go in one request
    policy = RetentionSpec(keep_last=3)
    manifests = ManifestStore(store, retire=lambda m: plan_retention(m, policy).delete)
    per_publish = []
    for counter in range(1, 13):
        before = len(fake.requests)
        manifests.publish(_checkpoint(tmp_path, counter, 300 * KIB), f"ckpt-{counter:04d}.pt", counter)
        per_publish.append(len(fake.requests) - before)
    steady = per_publish[5:]  # folders made, retention deleting one per publish
    assert max(steady) <= 4, per_publish
    assert len(store.list("checkpoints/")) == 3


def test_publishing_from_two_threads_keeps_every_record(fake: DriveFake, tmp_path: Path) -> None:
    manifests = ManifestStore(_store(fake, fake.add_folder()))
    errors: list[BaseException] = []

    def publish(counter: int) -> None:
        try:
            manifests.publish(_checkpoint(tmp_path / str(counter), counter), f"ckpt-{counter:04d}.pt", counter)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(c,)) for c in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    records = ManifestStore(_store(fake, manifests.store.folder_id)).load().records  # type: ignore[attr-defined]
    assert sorted(r.counter for r in records) == [1, 2, 3, 4]  # type: ignore[type-var]
    assert len({r.seq for r in records}) == 4


def test_a_second_writer_on_drive_is_detected_with_one_metadata_request(fake: DriveFake, tmp_path: Path) -> None:
    folder = fake.add_folder()
    a = ManifestStore(_store(fake, folder), session="a", recheck_every=0)
    b = ManifestStore(_store(fake, folder), session="b", recheck_every=0)
    a.publish(_checkpoint(tmp_path, 1), "ckpt-0001.pt", 1)
    before = len(fake.requests)
    a.publish(_checkpoint(tmp_path, 2), "ckpt-0002.pt", 2)
    assert [op for op, _ in fake.requests[before:]].count("media") == 0, "an unchanged manifest is not re-read"
    b.publish(_checkpoint(tmp_path, 3), "ckpt-0003.pt", 3)
    with pytest.raises(StateError, match="another session"):
        a.publish(_checkpoint(tmp_path, 4), "ckpt-0004.pt", 4)
