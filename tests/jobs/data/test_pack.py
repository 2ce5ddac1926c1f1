"""``orchestrator dataset pack``: a Drive-friendly tree or one archive; resumable after kill -9, idempotent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.darknet.dataset import find_samples
from jobs.data import pack_dataset, plan_pack, stage_archive
from orchestrator.app.cli import main
from orchestrator.core.errors import ConfigError
from tests.mounts import mount
from tests.mounts.markers import requires_fuse

ROOT = Path(__file__).resolve().parents[3]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _source(folder: Path, images: int) -> Path:
    """YOLO beside images, a VOC JPEGImages/Annotations half, an ultralytics images/labels part, a name clash."""
    (folder / "yolo ü").mkdir(parents=True)
    (folder / "voc" / "JPEGImages").mkdir(parents=True)
    (folder / "voc" / "Annotations").mkdir(parents=True)
    (folder / "u" / "images" / "train").mkdir(parents=True)
    (folder / "u" / "labels" / "train").mkdir(parents=True)
    (folder / "classes.txt").write_text("box\n")
    for i in range(images):
        part = i % 3
        if part == 0:
            (folder / "yolo ü" / f"img{i}.jpg").write_bytes(os.urandom(300))
            (folder / "yolo ü" / f"img{i}.txt").write_text(f"0 0.5 0.5 0.{i % 9 + 1} 0.1\n")
        elif part == 1:
            (folder / "voc" / "JPEGImages" / f"img{i}.jpg").write_bytes(os.urandom(300))
            (folder / "voc" / "Annotations" / f"img{i}.xml").write_text(f"<annotation>{i}</annotation>")
        else:
            (folder / "u" / "images" / "train" / f"img{i}.png").write_bytes(os.urandom(300))
            (folder / "u" / "labels" / "train" / f"img{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (folder / "voc" / "JPEGImages" / "img0.jpg").write_bytes(b"same name as yolo/img0.jpg")
    return folder


def test_tree_has_small_folders_labels_beside_images_and_a_manifest(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 30)
    report = pack_dataset(src, tmp_path / "packed", files_per_folder=8)
    dest = tmp_path / "packed"
    folders = [p for p in dest.iterdir() if p.is_dir()]
    assert report.samples == 31 and len(folders) == report.folders
    assert all(len(os.listdir(f)) <= 8 for f in folders)
    assert (dest / "classes.txt").read_text() == "box\n"
    images = [p for p in dest.rglob("*") if p.suffix in (".jpg", ".png")]
    unlabelled = [p for p in images if not (p.with_suffix(".txt").exists() or p.with_suffix(".xml").exists())]
    assert len(images) == 31 and len(unlabelled) == 1  # the background image without a label stays one
    manifest = json.loads((dest / "manifest.json").read_text())
    listed = {e["path"]: e["size"] for e in manifest["files"]}
    on_disk = {k: len(v) for k, v in _tree(dest).items() if k != "manifest.json"}
    assert listed == on_disk
    assert len(find_samples(dest, "yolo")) == 31  # the darknet kind reads the packed tree as it is


def test_rerun_changes_nothing(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 12)
    pack_dataset(src, tmp_path / "packed", files_per_folder=6)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "packed").rglob("*")}
    again = pack_dataset(src, tmp_path / "packed", files_per_folder=6)
    assert again.copied == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "packed").rglob("*")} == before


def test_kill_9_then_rerun_gives_the_same_tree(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 3000)
    assert main(["dataset", "pack", str(src), str(tmp_path / "reference"), "--files-per-folder", "100"]) == 0
    dest = tmp_path / "packed"
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "dataset", "pack", str(src), str(dest),
                             "--files-per-folder", "100"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = dest / ".pack-journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.stat().st_size > 200 * 60:
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the pack finished before the kill: make the source larger"
    assert not (dest / "manifest.json").exists()
    assert main(["dataset", "pack", str(src), str(dest), "--files-per-folder", "100"]) == 0
    assert _tree(dest) == _tree(tmp_path / "reference")


@pytest.mark.parametrize("name", ["d.zip", "d.tar.gz"])
def test_one_archive_stages_to_the_packed_tree(tmp_path: Path, name: str) -> None:
    src = _source(tmp_path / "src", 20)
    pack_dataset(src, tmp_path / "tree", files_per_folder=10)
    report = pack_dataset(src, tmp_path / name, files_per_folder=10)
    assert report.copied == report.files + 1  # every planned file and the manifest
    assert pack_dataset(src, tmp_path / name, files_per_folder=10).copied == 0
    staged = stage_archive(tmp_path / name, tmp_path / "stage")
    assert _tree(staged.root / "d") == _tree(tmp_path / "tree")


@pytest.mark.parametrize("name", ["d.zip", "d.tar.gz", "d.tar"])
def test_kill_9_mid_archive_then_rerun_continues_and_gives_the_same_archive(tmp_path: Path, name: str) -> None:
    """Issue 12: an interrupted archive pack used to start again from the first file. Now the re-run cuts the part
    file back to the last checkpoint, packs only the rest, and the archive is byte-identical to an uninterrupted
    one; a re-run after that changes nothing."""
    src = _source(tmp_path / "src", 1200)
    args = ["--files-per-folder", "100", "--checkpoint-every", "100"]
    assert main(["dataset", "pack", str(src), str(tmp_path / "reference" / name), *args]) == 0
    dest = tmp_path / "packed" / name
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "dataset", "pack", str(src), str(dest), *args],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = dest.with_name(f".{name}.pack-state.json")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(state.read_text())["done"] >= 400:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the pack finished before the kill: make the source larger"
    assert not dest.exists()  # never a half-written DEST
    done_before = json.loads(state.read_text())["done"]
    result = subprocess.run([sys.executable, "-m", "orchestrator", "dataset", "pack", str(src), str(dest), *args],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    written = int(result.stdout.split(" files written")[0].rsplit(" ", 1)[-1])
    planned = len(plan_pack(src, 100)[0])
    assert written == planned - done_before + 1  # the rest and the manifest: nothing packed twice
    assert dest.read_bytes() == (tmp_path / "reference" / name).read_bytes()
    assert not state.exists() and not dest.with_name(f".{name}.pack-part").exists()
    mtime = dest.stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-m", "orchestrator", "dataset", "pack", str(src), str(dest), *args],
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=False)
    assert again.returncode == 0 and "nothing changed" in again.stdout and dest.stat().st_mtime_ns == mtime


def test_a_checkpoint_of_another_source_starts_over(tmp_path: Path) -> None:
    """A left-over part and state of an earlier pack whose source has changed since: not continued (that would
    mix two sources), packed again from the start, the same as a fresh pack of the current source."""
    import jobs.data.pack as pack_module

    src = _source(tmp_path / "src", 60)
    dest = tmp_path / "d.tar.gz"
    saved = pack_module._save_state
    calls = []

    def stop_after_two(*a: object, **k: object) -> None:
        saved(*a, **k)  # type: ignore[arg-type]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C after the second checkpoint

    pack_module._save_state = stop_after_two  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            pack_dataset(src, dest, 10, checkpoint_every=(10, 1 << 30))
    finally:
        pack_module._save_state = saved
    assert dest.with_name(".d.tar.gz.pack-state.json").exists()
    (src / "yolo ü" / "img0.jpg").write_bytes(b"an edited image")  # the source changed since
    pack_dataset(src, dest, 10, checkpoint_every=(10, 1 << 30))
    pack_dataset(src, tmp_path / "fresh" / "d.tar.gz", 10, checkpoint_every=(10, 1 << 30))
    assert dest.read_bytes() == (tmp_path / "fresh" / "d.tar.gz").read_bytes()


def test_dest_that_is_not_a_pack_is_refused(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 3)
    other = tmp_path / "My Drive"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    with pytest.raises(ConfigError, match="not this pack's"):
        pack_dataset(src, other)
    assert (other / "thesis.docx").read_text() == "precious"
    with pytest.raises(ConfigError, match="inside SRC"):
        pack_dataset(src, src / "packed")


def test_plan_is_one_pass_and_bounded(tmp_path: Path) -> None:
    src = _source(tmp_path / "src", 40)
    plan, samples = plan_pack(src, files_per_folder=5)
    folders: dict[str, int] = {}
    for item in plan:
        if "/" in item.dest:
            folders[item.dest.split("/")[0]] = folders.get(item.dest.split("/")[0], 0) + 1
    assert samples == 41 and max(folders.values()) <= 5
    assert len({item.dest for item in plan}) == len(plan)


@requires_fuse
@pytest.mark.parametrize(("seed", "uploaded"), [(1, 0.25), (7, 0.5), (12, 0.9)])
def test_pack_onto_drive_survives_a_vm_that_vanishes_mid_upload(tmp_path: Path, seed: int, uploaded: float) -> None:
    """Packing onto the lazy Drive mount, the VM vanishes with uploads queued (the journal, open until the end,
    never reached Drive; some files did); packing again from a new VM gives the reference tree."""
    src = _source(tmp_path / "src", 60)
    pack_dataset(src, tmp_path / "reference", files_per_folder=10)
    drive = tmp_path / "drive"
    drive.mkdir()
    with mount(drive, tmp_path / "vm1", lazy_uploads=True, upload_interval_s=None, seed=seed) as m:
        pack_dataset(src, m.path / "packed", files_per_folder=10)
        m.pump(int(m.pending() * uploaded))
        lost = m.vanish()
    assert lost > 0 and (drive / "packed").exists()
    with mount(drive, tmp_path / "vm2", lazy_uploads=True, upload_interval_s=None, seed=seed + 1) as m:
        pack_dataset(src, m.path / "packed", files_per_folder=10)
        m.flush()
    assert _tree(drive / "packed") == _tree(tmp_path / "reference")
