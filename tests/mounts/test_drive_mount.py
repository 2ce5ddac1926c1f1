"""The Drive mount double through a real FUSE mount: lazy uploads, vanish, flush, slow opens, EIO on big folders."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from pathlib import Path

import pytest

from tests.mounts import mount
from tests.mounts.markers import requires_fuse

pytestmark = requires_fuse


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    folder = tmp_path / "My Drive ü"
    (folder / "runs").mkdir(parents=True)
    (folder / "runs" / "state.json").write_text("v1")
    return folder


def test_writes_are_seen_at_once_and_uploaded_later(drive: Path, tmp_path: Path) -> None:
    with mount(drive, tmp_path / "vm", lazy_uploads=True, upload_interval_s=None) as m:
        (m.path / "runs" / "state.json").write_text("v2")
        (m.path / "runs" / "new file.txt").write_text("hello")
        assert (m.path / "runs" / "state.json").read_text() == "v2"
        assert sorted(os.listdir(m.path / "runs")) == ["new file.txt", "state.json"]
        assert (drive / "runs" / "state.json").read_text() == "v1"
        assert not (drive / "runs" / "new file.txt").exists()
        assert m.pending() == 2
        m.flush()
    assert (drive / "runs" / "state.json").read_text() == "v2"
    assert (drive / "runs" / "new file.txt").read_text() == "hello"


def test_vanish_loses_the_queue_and_keeps_what_was_uploaded(drive: Path, tmp_path: Path) -> None:
    with mount(drive, tmp_path / "vm", lazy_uploads=True, upload_interval_s=None, seed=5) as m:
        for i in range(6):
            (m.path / f"f{i}").write_text(str(i))
        assert m.pump(2) == 2
        held = open(m.path / "f0")  # noqa: SIM115 - held open across the vanish
        assert m.vanish() == 4
        assert not os.path.ismount(m.path)
        with pytest.raises(OSError):
            held.read()
        with contextlib.suppress(OSError):
            held.close()
    uploaded = sorted(p.name for p in drive.iterdir() if p.is_file())
    assert len(uploaded) == 2
    assert all((drive / name).read_text() == name[1:] for name in uploaded)
    assert not (tmp_path / "vm" / "view").exists()


def test_atomic_replace_on_the_mount_never_leaves_a_torn_file(drive: Path, tmp_path: Path) -> None:
    """temp + rename written many times, vanished at an arbitrary point: Drive holds some whole version."""
    for seed in range(4):
        with mount(drive, tmp_path / f"vm{seed}", lazy_uploads=True, upload_interval_s=None, seed=seed) as m:
            for version in range(2, 8):
                tmp = m.path / "runs" / ".state.tmp"
                tmp.write_text(f"v{version}" * 100)
                os.replace(tmp, m.path / "runs" / "state.json")
            m.pump(seed * 3)
            m.vanish()
        text = (drive / "runs" / "state.json").read_text()
        assert text == "v1" or (len(text) == 200 and text == text[:2] * 100)


def test_background_uploads_reach_drive(drive: Path, tmp_path: Path) -> None:
    with mount(drive, tmp_path / "vm", lazy_uploads=True, upload_interval_s=0.01) as m:
        (m.path / "a.txt").write_text("a")
        deadline = time.monotonic() + 10
        while not (drive / "a.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (drive / "a.txt").read_text() == "a"


def test_listing_a_huge_folder_fails_with_eio_but_opening_by_name_works(tmp_path: Path) -> None:
    drive = tmp_path / "drive"
    (drive / "big").mkdir(parents=True)
    for i in range(30):
        (drive / "big" / f"{i}.jpg").write_bytes(b"x")
    with mount(drive, tmp_path / "vm", list_limit=20) as m:
        with pytest.raises(OSError) as info:
            os.listdir(m.path / "big")
        assert info.value.errno == errno.EIO
        assert (m.path / "big" / "7.jpg").read_bytes() == b"x"
        assert os.listdir(m.path) == ["big"]
        assert m.stats()["list_errors"] == 1


def test_opens_cost_a_round_trip_and_run_concurrently(drive: Path, tmp_path: Path) -> None:
    with mount(drive, tmp_path / "vm", open_latency_s=0.2) as m:
        t0 = time.monotonic()
        (m.path / "runs" / "state.json").read_text()
        one = time.monotonic() - t0
        threads = [threading.Thread(target=(m.path / "runs" / "state.json").read_text) for _ in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        four = time.monotonic() - t0
        assert m.stats()["opens"] == 5
    assert one >= 0.2
    assert four < 4 * 0.2


def test_links_are_refused_like_drive(drive: Path, tmp_path: Path) -> None:
    with mount(drive, tmp_path / "vm", lazy_uploads=True) as m, pytest.raises(OSError):
        os.symlink("runs", m.path / "link")
