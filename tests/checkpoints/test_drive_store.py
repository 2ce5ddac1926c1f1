"""DriveStore against the loopback Drive v3 server, driven by the real google-api-python-client."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkpoints.drive_auth import DRIVE_SCOPES, load_credentials, static_drive_document
from checkpoints.drive_layout import GEN_PROP, KEY_PROP, PENDING_PROP, ROOT_PROP
from checkpoints.drive_store import DriveStore
from checkpoints.testing import StoreContract
from orchestrator.core.errors import ConfigError, StorageError
from tests.checkpoints.drive_server import DriveFake, loopback_store

KIB = 1024


@pytest.fixture
def fake() -> Iterator[DriveFake]:
    server = DriveFake().start()
    yield server
    server.stop()


@pytest.fixture
def lagging_fake() -> Iterator[DriveFake]:
    """New files stay out of files.list for longer than any test runs (files.get sees them at once)."""
    server = DriveFake(list_lag=600).start()
    yield server
    server.stop()


def _leave_partial(store: DriveStore, key: str) -> None:
    """Both kinds of incomplete Drive object: an uploaded-but-unpublished file, and an unfinished session."""
    store.stage(io.BytesIO(b"half a checkpoint"), key)
    from googleapiclient.http import MediaIoBaseUpload

    media = MediaIoBaseUpload(
        io.BytesIO(os.urandom(600 * KIB)), "application/octet-stream", chunksize=256 * KIB, resumable=True
    )
    body = {"name": key, "parents": [store.folder_id], "properties": {PENDING_PROP: key}}
    request = store._files.create(body=body, media_body=media)
    status, done = request.next_chunk(http=store._http())
    assert done is None and status.resumable_progress == 256 * KIB


class TestDriveStoreContract(StoreContract):
    big_size = 1 * 1024 * KIB + 12345  # four 256 KiB chunks and a tail: exercises the resumable path

    @pytest.fixture
    def store(self, fake: DriveFake) -> DriveStore:
        return loopback_store(fake, fake.add_folder("store ✓"))

    def leave_partial(self, store: DriveStore, key: str) -> None:  # type: ignore[override]
        _leave_partial(store, key)


class TestDriveStoreContractWithListingLag(StoreContract):
    """The same contract while files.list lags: recorded IDs keep just-written keys visible."""

    def test_sweep_leftovers_removes_partials_and_keeps_published(self, store: DriveStore) -> None:
        pytest.skip("a sweep finds partials through files.list, which lags by design here; real sweeps run at "
                    "session start on partials left by earlier sessions, long visible by then")

    big_size = 1 * 1024 * KIB + 12345

    @pytest.fixture
    def store(self, lagging_fake: DriveFake) -> DriveStore:
        return loopback_store(lagging_fake, lagging_fake.add_folder("store"))

    def leave_partial(self, store: DriveStore, key: str) -> None:  # type: ignore[override]
        _leave_partial(store, key)


class TestDriveStoreContractOnSharedDrive(StoreContract):
    """The same contract in a shared-drive folder (service accounts), where every request needs the flags."""

    big_size = 1 * 1024 * KIB + 12345

    @pytest.fixture
    def store(self, fake: DriveFake) -> DriveStore:
        return loopback_store(fake, fake.add_folder("team", shared_drive=True), shared_drive=True)

    def leave_partial(self, store: DriveStore, key: str) -> None:  # type: ignore[override]
        store.stage(io.BytesIO(b"half a checkpoint"), key)


# -- layout and publishing ---------------------------------------------------------------------------------


def test_objects_are_files_in_real_folders_under_their_own_names(fake: DriveFake, tmp_path: Path) -> None:
    """Issue 10 (5): files were named by their whole key, flat, beside the manifest; a search for the
    checkpoint's own name found nothing."""
    folder = fake.add_folder("job store")
    store = loopback_store(fake, folder)
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(700 * KIB))
    key = "checkpoints/00000/00000004-yolov3_final.weights"
    entry = store.upload_with_labels(src, key, {"seq": "4", "counter": "20", "sha256": "ab" * 32})
    store.write_bytes("manifest.json", b"{}")
    (file,) = [f for f in fake.objects() if f.id == entry.file_id]
    assert file.content == src.read_bytes()
    assert fake.path_of(file) == "job store/checkpoints/00000/yolov3_final.weights"
    assert file.name == "yolov3_final.weights"
    assert file.properties[KEY_PROP] == key and file.properties[ROOT_PROP] == folder
    assert PENDING_PROP not in file.properties and GEN_PROP in file.properties
    assert file.app_properties == {"orch_seq": "4", "orch_counter": "20", "orch_sha256": "ab" * 32}
    (manifest,) = [f for f in fake.objects() if f.properties[KEY_PROP] == "manifest.json"]
    assert fake.path_of(manifest) == "job store/.orchestrator/manifest.json", "the manifest is out of the way"
    top = sorted(f.name for f in fake.children(folder))
    assert top == [".orchestrator", "checkpoints"]
    # a person's search by name finds it
    files = [f for f in fake.objects() if "yolov3_final.weights" in f.name]
    assert [f.id for f in files] == [entry.file_id]


def test_upload_replaces_with_a_new_file_and_write_bytes_updates_in_place(fake: DriveFake) -> None:
    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    first = store.write_bytes("manifest.json", b"v1")
    second = store.write_bytes("manifest.json", b"v2")
    assert first.file_id == second.file_id, "a small object keeps its file ID (content replaced by revision)"
    assert [f.content for f in fake.objects()] == [b"v2"]
    assert fake.count("delete") == 0
    store.delete("manifest.json")
    assert fake.objects() == [], "files.delete leaves no trashed copy eating quota"
    a = store.write_bytes("ckpt/last.weights", b"a")
    fresh = loopback_store(fake, folder)
    b = fresh.write_bytes("ckpt/last.weights", b"b")  # found by query in a new process: updated in place
    assert a.file_id == b.file_id and [f.content for f in fake.objects()] == [b"b"]


def test_a_new_process_finds_objects_by_query(fake: DriveFake, tmp_path: Path) -> None:
    folder = fake.add_folder()
    loopback_store(fake, folder).write_bytes("state/manifest.json", b"{}")
    fresh = loopback_store(fake, folder)  # no recorded IDs: a resume on another machine
    entry = fresh.stat("state/manifest.json")
    assert entry is not None and entry.size == 2
    assert fresh.read_bytes("state/manifest.json") == b"{}"
    assert [e.key for e in fresh.list("state/")] == ["state/manifest.json"]


def test_listing_lag_does_not_hide_a_just_written_key(lagging_fake: DriveFake, tmp_path: Path) -> None:
    folder = lagging_fake.add_folder()
    store = loopback_store(lagging_fake, folder)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(900 * KIB))
    entry = store.upload(src, "ckpt/big.bin")
    # the server really lags: a query finds nothing yet ...
    assert loopback_store(lagging_fake, folder).stat("ckpt/big.bin") is None
    # ... but the writer recorded the ID, so stat/read/list/download see the object at once
    assert store.stat("ckpt/big.bin") == entry
    assert [e.key for e in store.list("ckpt/")] == ["ckpt/big.bin"]
    store.download("ckpt/big.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == src.read_bytes()
    assert lagging_fake.count("get") >= 1


def test_duplicate_published_files_resolve_to_the_newest_generation(fake: DriveFake) -> None:
    """A crash between publishing a new file and deleting the old one leaves two: readers pick the newer."""
    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    store.write_bytes("k.bin", b"new")
    with fake.lock:
        fake.create_file(
            {"name": "k.bin", "parents": [folder], "properties": {ROOT_PROP: folder, KEY_PROP: "k.bin", GEN_PROP: "1"}},
            b"old",
        )
    fresh = loopback_store(fake, folder)
    assert fresh.read_bytes("k.bin") == b"new"
    assert [(e.key, e.size) for e in fresh.list("")] == [("k.bin", 3)]
    fresh.write_bytes("k.bin", b"newest")  # updates the newest in place (its ID is known from the read)
    assert fresh.read_bytes("k.bin") == b"newest"
    assert fresh.sweep_leftovers() == 1  # the session-start sweep removes the superseded duplicate
    assert [f.content for f in fake.objects()] == [b"newest"]


def test_a_machine_with_a_slow_clock_still_publishes_the_newest_version(
    fake: DriveFake, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    folder = fake.add_folder()
    src = tmp_path / "w.bin"
    src.write_bytes(b"from the first machine")
    loopback_store(fake, folder).upload(src, "state/w.bin")
    real_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_ns() - 3600 * 10**9)  # an hour behind
    fake.inject("503", on="delete", times=100)  # the old version cannot be deleted: both stay published
    behind = loopback_store(fake, folder)
    src.write_bytes(b"from the second machine")
    behind.upload(src, "state/w.bin")
    assert "left for the next upload" in caplog.text
    assert len(fake.objects()) == 2
    assert loopback_store(fake, folder).read_bytes("state/w.bin") == b"from the second machine"
    fake.faults.clear()
    src.write_bytes(b"third")
    behind.upload(src, "state/w.bin")  # cleans up both older versions
    assert [f.content for f in fake.objects()] == [b"third"]


def test_unpublished_leftovers_are_invisible_and_swept(fake: DriveFake) -> None:
    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    store.stage(io.BytesIO(b"crashed before publish"), "ckpt/a.bin")
    assert store.stat("ckpt/a.bin") is None and store.list("") == []
    store.write_bytes("ckpt/a.bin", b"done")
    assert store.read_bytes("ckpt/a.bin") == b"done"
    assert store.sweep_leftovers(older_than=-1) == 1
    assert [f.content for f in fake.objects()] == [b"done"]


def test_listing_pages_through_many_objects(fake: DriveFake) -> None:
    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    with fake.lock:  # 2500 published objects made directly on the server: listing needs three pages
        for i in range(2500):
            fake.create_file(
                {
                    "name": f"{i}",
                    "parents": [folder],
                    "properties": {ROOT_PROP: folder, KEY_PROP: f"many/{i:05d}.bin", GEN_PROP: "1"},
                },
                b"x",
            )
    entries = store.list("many/")
    assert len(entries) == 2500 and entries[0].key == "many/00000.bin"
    assert fake.count("list") == 3


def test_verify_folder_explains_a_wrong_folder_id(fake: DriveFake) -> None:
    loopback_store(fake, fake.add_folder()).verify_folder()
    with pytest.raises(StorageError, match="folder nope was not found"):
        loopback_store(fake, "nope").verify_folder()
    with pytest.raises(StorageError, match="folder nope was not found"):
        loopback_store(fake, "nope").write_bytes("a.bin", b"x")
    store = loopback_store(fake, fake.add_folder())
    file_id = store.write_bytes("a.bin", b"x").file_id
    with pytest.raises(StorageError, match="not a folder"):
        loopback_store(fake, str(file_id)).verify_folder()


def test_key_longer_than_a_drive_property_is_rejected(fake: DriveFake) -> None:
    store = loopback_store(fake, fake.add_folder())
    with pytest.raises(StorageError, match="Drive property"):
        store.write_bytes("d/" + "ü" * 60, b"x")


def test_chunk_size_must_be_a_multiple_of_256_kib(fake: DriveFake) -> None:
    with pytest.raises(StorageError, match="256 KiB"):
        loopback_store(fake, fake.add_folder(), chunk_size=1000 * KIB)


def test_shared_drive_folder_needs_shared_drive_true(fake: DriveFake) -> None:
    folder = fake.add_folder("team", shared_drive=True)
    with pytest.raises(StorageError, match="not found .*set shared_drive: true"):
        loopback_store(fake, folder).write_bytes("a.bin", b"x")
    with pytest.raises(StorageError, match="not found"):
        loopback_store(fake, folder).verify_folder()
    loopback_store(fake, folder, shared_drive=True).verify_folder()
    store = loopback_store(fake, folder, shared_drive=True)
    store.write_bytes("a.bin", b"x")
    assert store.read_bytes("a.bin") == b"x" and [e.key for e in store.list("")] == ["a.bin"]


# -- auth and construction --------------------------------------------------------------------------------


def _service_account_file(path: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "p",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "orch@p.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    path.write_text(json.dumps(info))
    return path


def test_credentials_type_is_detected_from_the_json(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    sa = load_credentials(_service_account_file(tmp_path / "sa key.json"))
    assert sa.service_account_email == "orch@p.iam.gserviceaccount.com"
    assert tuple(sa.scopes) == DRIVE_SCOPES
    user_file = tmp_path / "token.json"
    user_file.write_text(
        json.dumps({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r-SECRET"})
    )
    user = load_credentials(user_file)
    assert user.refresh_token == "r-SECRET" and tuple(user.scopes) == DRIVE_SCOPES


def test_bad_credentials_files_are_config_errors_without_secrets(tmp_path: Path) -> None:
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps({"type": "external_account_x", "secret": "TOPSECRET"}))
    with pytest.raises(ConfigError, match="expected 'service_account' or 'authorized_user'") as info:
        load_credentials(weird)
    assert "TOPSECRET" not in str(info.value)
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text(json.dumps({"type": "authorized_user", "refresh_token": "TOPSECRET"}))
    with pytest.raises(ConfigError, match="incomplete") as info:
        load_credentials(incomplete)
    assert "TOPSECRET" not in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(tmp_path / "missing.json")


def test_no_credentials_anywhere_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nope.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    with pytest.raises(ConfigError, match="authenticate_user"):
        load_credentials(None)


def test_from_spec_builds_an_offline_client(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from checkpoints.spec import DriveStoreSpec, open_store
    from orchestrator.core.paths import JobPaths

    spec = DriveStoreSpec(
        type="drive",
        folder_id="F1",
        credentials=_service_account_file(tmp_path / "sa.json"),
        shared_drive=True,
        chunk_size_mb=16,
    )
    store = DriveStore.from_spec(spec)  # no network: the discovery document ships with the library
    assert (store.folder_id, store.shared_drive, store.chunk_size) == ("F1", True, 16 << 20)
    opened = open_store(spec, JobPaths(tmp_path / "home", tmp_path / "work"))
    assert isinstance(opened, DriveStore) and opened.folder_id == "F1"
    assert static_drive_document()["rootUrl"] == "https://www.googleapis.com/"
    assert static_drive_document("http://127.0.0.1:9/")["rootUrl"] == "http://127.0.0.1:9/"


def test_manifest_over_drive_survives_a_move_to_another_machine(fake: DriveFake, tmp_path: Path) -> None:
    """Publish checkpoints through the manifest on one machine; a fresh process elsewhere finds and restores them."""
    from checkpoints.manifest import ManifestStore

    folder = fake.add_folder()
    manifests = ManifestStore(loopback_store(fake, folder), session="colab-1")
    blobs = {i: os.urandom(300 * KIB + i) for i in (100, 200)}
    for counter, blob in blobs.items():
        src = tmp_path / f"micro_{counter}.weights"
        src.write_bytes(blob)
        record = manifests.publish(src, src.name, counter=counter)
        assert record.file_id is not None and fake.files[record.file_id].content == blob
    elsewhere = loopback_store(fake, folder)  # no remembered IDs
    newest = ManifestStore(elsewhere).load().newest_first()[0]
    assert newest.counter == 200
    elsewhere.download(newest.key, tmp_path / "restored.weights")
    assert (tmp_path / "restored.weights").read_bytes() == blobs[200]


# -- verification -------------------------------------------------------------------------------------------


def test_upload_that_drive_stored_differently_is_never_published(
    fake: DriveFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E.g. the training rewrote the file while it was being sent: Drive's MD5 differs from the local one."""
    from checkpoints import drive_store

    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    store.write_bytes("ckpt/last.weights", b"previous")
    src = tmp_path / "w.bin"
    src.write_bytes(os.urandom(600 * KIB))
    real_digest = drive_store.file_digest
    monkeypatch.setattr(drive_store, "file_digest", lambda fh: (real_digest(fh)[0], "0" * 32))
    with pytest.raises(StorageError, match="nothing was published"):
        store.upload(src, "ckpt/last.weights")
    assert store.read_bytes("ckpt/last.weights") == b"previous"
    assert [f.content for f in fake.objects()] == [b"previous"], "the bad upload was deleted"


def test_corrupted_download_is_rejected_and_leaves_dest_alone(fake: DriveFake, tmp_path: Path) -> None:
    store = loopback_store(fake, fake.add_folder())
    store.write_bytes("ckpt/a.weights", os.urandom(300 * KIB))
    dest = tmp_path / "dl" / "a.weights"
    dest.parent.mkdir()
    dest.write_bytes(b"older local copy")
    fake.corrupt_media = True
    with pytest.raises(StorageError, match="corrupted"):
        store.download("ckpt/a.weights", dest)
    assert dest.read_bytes() == b"older local copy"
    assert os.listdir(dest.parent) == ["a.weights"], "no temp file left behind"
    with pytest.raises(StorageError, match="corrupted"):
        store.read_bytes("ckpt/a.weights")


def test_listing_lag_does_not_resurrect_a_just_deleted_key(fake: DriveFake) -> None:
    fake.list_lag = 600  # from here on: new files are not listed yet, deleted ones still are
    folder = fake.add_folder()
    with fake.lock:  # written long ago (listed), as on a resumed machine
        props = {ROOT_PROP: folder, KEY_PROP: "ckpt/old.bin"}
        old = fake.create_file({"name": "x", "parents": [folder], "properties": props}, b"o")
        old.listable_after = 0
    store = loopback_store(fake, folder)
    assert [e.key for e in store.list("")] == ["ckpt/old.bin"]
    store.delete("ckpt/old.bin")
    assert len(fake.ghosts) == 1, "the server still lists the deleted file"
    assert store.list("") == [] and store.stat("ckpt/old.bin") is None


def test_unpublished_leftovers_of_deleted_keys_are_swept(fake: DriveFake) -> None:
    folder = fake.add_folder()
    store = loopback_store(fake, folder)
    store.stage(io.BytesIO(b"crash 1"), "ckpt/a.bin")
    store.stage(io.BytesIO(b"crash 2"), "ckpt/b.bin")
    store.write_bytes("ckpt/c.bin", b"published")
    store.delete("ckpt/a.bin")  # deleting a key also removes its unpublished uploads
    assert sorted(f.content for f in fake.objects()) == [b"crash 2", b"published"]
    assert store.sweep_unpublished(older_than=3600) == 0, "too young: it may be an upload in progress"
    assert store.sweep_unpublished(older_than=0) == 1
    assert [f.content for f in fake.objects()] == [b"published"]


def test_big_object_roundtrip_through_write_bytes_and_read_bytes(fake: DriveFake) -> None:
    store = loopback_store(fake, fake.add_folder(), chunk_size=8 << 20)
    data = os.urandom(24 << 20)
    store.write_bytes("big.bin", data)
    assert store.read_bytes("big.bin") == data


def test_store_without_http_factory_serialises_requests_on_the_services_client(fake: DriveFake, tmp_path: Path) -> None:
    """A caller may hand in just a service object; requests then share its one httplib2 client, one at a time."""
    import threading

    from checkpoints.drive_auth import build_drive_service, plain_http_factory
    from checkpoints.drive_retry import DriveRetry

    service = build_drive_service(plain_http_factory(), root_url=fake.root_url)
    store = DriveStore(service, fake.add_folder(), chunk_size=256 * KIB, retry=DriveRetry(initial=0.001, maximum=0.01))
    blobs = {f"t{i}/w.bin": os.urandom(600 * KIB + i) for i in range(4)}
    errors: list[BaseException] = []

    def roundtrip(key: str) -> None:
        try:
            store.write_bytes(key, blobs[key])
            assert store.read_bytes(key) == blobs[key]
        except BaseException as exc:  # noqa: BLE001 - surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=roundtrip, args=(key,)) for key in blobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert sorted(e.key for e in store.list("")) == sorted(blobs)


def test_the_fake_speaks_files_update_uploads_as_the_client_library_sends_them(fake: DriveFake) -> None:
    """The fake answers every upload form the library uses, files.update with media included."""
    from googleapiclient.http import MediaIoBaseUpload

    from checkpoints.drive_auth import build_drive_service, plain_http_factory

    files = build_drive_service(plain_http_factory(), root_url=fake.root_url).files()
    folder = fake.add_folder()
    created = files.create(body={"name": "f", "parents": [folder]}, fields="id").execute()
    small = MediaIoBaseUpload(io.BytesIO(b"multipart content"), "application/octet-stream")
    meta = files.update(fileId=created["id"], body={"name": "g"}, media_body=small, fields="name,size").execute()
    assert meta == {"name": "g", "size": "17"}
    big = os.urandom(700 * KIB)
    media = MediaIoBaseUpload(io.BytesIO(big), "application/octet-stream", chunksize=256 * KIB, resumable=True)
    request = files.update(fileId=created["id"], media_body=media, fields="id,md5Checksum")
    response = None
    while response is None:
        _status, response = request.next_chunk()
    assert response["id"] == created["id"] and fake.files[created["id"]].content == big
    listed = files.list(q=f"'{folder}' in parents and name = 'g' and trashed = false", fields="files(id)").execute()
    assert listed == {"files": [{"id": created["id"]}]}
    assert files.get(fileId=created["id"]).execute()["name"] == "g"  # v3 default fields: kind, id, name, mimeType


def test_a_store_written_flat_by_an_earlier_version_still_resumes(fake: DriveFake, tmp_path: Path) -> None:
    """Before folders: every file directly in the store folder, no orch_root; the manifest records file IDs."""
    from checkpoints.manifest import Manifest, ManifestRecord, ManifestStore

    folder = fake.add_folder()
    with fake.lock:
        ckpt = fake.create_file(
            {"name": "checkpoints/00000/00000001-a.weights", "parents": [folder],
             "properties": {KEY_PROP: "checkpoints/00000/00000001-a.weights", GEN_PROP: "1"}}, b"weights",
        )
        record = ManifestRecord(name="a.weights", key="checkpoints/00000/00000001-a.weights", counter=5, size=7,
                                sha256="0" * 64, created=1.0, file_id=ckpt.id, seq=1)
        doc = Manifest(records=(record,), next_seq=2, revision=3).to_bytes()
        fake.create_file({"name": "manifest.json", "parents": [folder],
                          "properties": {KEY_PROP: "manifest.json", GEN_PROP: "1"}}, doc)
    store = loopback_store(fake, folder)
    manifests = ManifestStore(store)
    assert manifests.load().records == (record,)
    store.download(record.key, tmp_path / "a.weights")
    assert (tmp_path / "a.weights").read_bytes() == b"weights"
    src = tmp_path / "b.weights"
    src.write_bytes(b"more")
    manifests.publish(src, "b.weights", counter=6)
    assert [r.counter for r in ManifestStore(loopback_store(fake, folder)).load().records] == [5, 6]
