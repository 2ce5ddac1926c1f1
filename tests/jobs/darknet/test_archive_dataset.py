"""Archive datasets end to end with the stand-in darknet: zip and tar.gz, YOLO and VOC, resume after a blank VM;
malicious archives refused with exit 2 and nothing written outside; a folder Drive cannot list says what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.jobs.darknet.test_job import (
    _env,
    cli,
    darknet_logs,
    job_dir,
    job_yaml,
    journal,
    kill_once_synced,
    manifest_counters,
)
from tests.jobs.data.archives import archive_folder, malicious
from tests.mounts import mount
from tests.mounts.markers import requires_fuse

__all__ = ["job_dir"]  # the darknet job folder fixture


def _dataset(folder: Path, fmt: str) -> Path:
    """Eight images in sub-folders (VOC xml or YOLO txt beside each); the VOC half in JPEGImages/Annotations."""
    for i in range(8):
        sub = folder / ("part a" if i < 4 else "part b")
        if fmt == "voc" and i >= 4:
            (sub / "JPEGImages").mkdir(parents=True, exist_ok=True)
            (sub / "Annotations").mkdir(parents=True, exist_ok=True)
            image, label = sub / "JPEGImages" / f"img{i}.png", sub / "Annotations" / f"img{i}.xml"
        else:
            sub.mkdir(parents=True, exist_ok=True)
            image, label = sub / f"img{i}.png", sub / f"img{i}.{'xml' if fmt == 'voc' else 'txt'}"
        image.write_bytes(b"\x89PNG fake " + bytes([i]))
        if fmt == "voc":
            label.write_text(
                "<annotation><size><width>64</width><height>64</height></size><object><name>box</name>"
                f"<bndbox><xmin>{4 + i}</xmin><ymin>8</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object>"
                "</annotation>")
        else:
            label.write_text(f"0 0.{4 + i} 0.5 0.25 0.25\n")
    return folder


def _use_dataset(job_dir: Path, path: str, fmt: str) -> None:
    text = job_yaml("alexeyab", sleep="0").replace(
        "dataset: {path: ./voc data, format: voc,", f"dataset: {{path: '{path}', format: {fmt},")
    (job_dir / "job.yaml").write_text(text)


@pytest.mark.parametrize("fmt", ["voc", "yolo"])
@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_archive_dataset_trains_and_resumes_after_a_blank_vm(job_dir: Path, fmt: str, suffix: str) -> None:
    src = _dataset(job_dir / "raw ü", fmt)
    archive_folder(src, job_dir / f"my data{suffix}", top="my data/")
    shutil.rmtree(src)
    _use_dataset(job_dir, f"./my data{suffix}", fmt)
    first = cli(job_dir, "run", "job.yaml")
    assert first.returncode == 0, first.stderr[-3000:]
    staged = [e for e in journal(job_dir) if e["event"] == "dataset_archive_staged"]
    assert len(staged) == 1 and staged[0]["files"] == 16 and not staged[0]["reused"]
    prepared = [e for e in journal(job_dir) if e["event"] == "dataset_prepared"]
    assert prepared[-1]["train"] + prepared[-1]["test"] == 8 and prepared[-1]["boxes"] == 8
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 250

    # a blank VM: the work folder is gone; reopening with more iterations re-stages the archive and resumes
    shutil.rmtree(job_dir / "work")
    cfg = job_dir / "micro.cfg"
    cfg.write_text(cfg.read_text().replace("max_batches=250", "max_batches=300"))
    again = cli(job_dir, "run", "job.yaml", "--reopen")
    assert again.returncode == 0, again.stderr[-3000:]
    staged = [e for e in journal(job_dir) if e["event"] == "dataset_archive_staged"]
    assert len(staged) == 2 and not staged[1]["reused"]
    logs = darknet_logs(job_dir)
    assert "Loading weights from" in logs[-1]
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 300


def test_unchanged_archive_is_not_staged_again_on_the_same_machine(job_dir: Path) -> None:
    archive_folder(_dataset(job_dir / "raw", "yolo"), job_dir / "d.tgz")
    _use_dataset(job_dir, "./d.tgz", "yolo")
    assert cli(job_dir, "run", "job.yaml").returncode == 0
    cfg = job_dir / "micro.cfg"
    cfg.write_text(cfg.read_text().replace("max_batches=250", "max_batches=260"))
    result = cli(job_dir, "run", "job.yaml", "--reopen")
    assert result.returncode == 0, result.stderr[-3000:]
    staged = [e for e in journal(job_dir) if e["event"] == "dataset_archive_staged"]
    assert [e["reused"] for e in staged] == [False, True]


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink_out", "device"])
def test_malicious_archive_is_refused_with_exit_2(job_dir: Path, fmt: str, kind: str) -> None:
    archive = malicious(kind, fmt, job_dir)
    _use_dataset(job_dir, f"./{archive.name}", "yolo")
    root = job_dir.parent
    before = {p for p in root.rglob("*")}
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "refused" in result.stderr and archive.name in result.stderr
    assert not list(root.rglob("evil.txt"))
    own = (job_dir / "jobs", job_dir / "work", root / "tmp")  # the job's state, its work folder, its temp link
    new = {p for p in root.rglob("*")} - before
    assert all(any(p == o or o in p.parents for o in own) for p in new), sorted(map(str, new))
    stage = job_dir / "work" / "det" / "dataset-archive"
    assert not stage.exists() or not [p for p in stage.rglob("*") if not p.is_dir()]


@requires_fuse
def test_a_folder_drive_cannot_list_fails_with_exit_2_saying_to_pack_it(job_dir: Path) -> None:
    drive = job_dir.parent / "drive"
    (drive / "big").mkdir(parents=True)
    for i in range(30):
        (drive / "big" / f"img{i}.png").write_bytes(b"x")
        (drive / "big" / f"img{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with mount(drive, job_dir.parent / "vm", list_limit=40) as m:
        _use_dataset(job_dir, str(m.path / "big"), "yolo")
        result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Input/output error" in result.stderr and "orchestrator dataset pack" in result.stderr
    assert "holds no images" not in result.stderr


@pytest.mark.slow
def test_kill_9_and_a_blank_vm_with_an_archive_dataset_resume_from_the_store(job_dir: Path) -> None:
    archive_folder(_dataset(job_dir / "raw", "yolo"), job_dir / "d.zip", top="d/")
    shutil.rmtree(job_dir / "raw")
    cfg = job_dir / "micro.cfg"
    cfg.write_text(cfg.read_text().replace("max_batches=250", "max_batches=600"))
    _use_dataset(job_dir, "./d.zip", "yolo")
    (job_dir / "job.yaml").write_text((job_dir / "job.yaml").read_text().replace('FAKE_DARKNET_SLEEP: "0"',
                                                                                 'FAKE_DARKNET_SLEEP: "0.01"'))
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "run", "job.yaml"], cwd=job_dir,
                            env=_env(job_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    newest = kill_once_synced(proc, job_dir, timeout=90)
    shutil.rmtree(job_dir / "work")  # the VM is gone: the archive is staged again, training resumes from the store
    time.sleep(0.3)
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    staged = [e for e in journal(job_dir) if e["event"] == "dataset_archive_staged"]
    assert len(staged) == 2 and not staged[1]["reused"]
    resumed = [e for e in journal(job_dir) if e["event"] == "resume_from"]
    assert resumed and resumed[-1]["where"] == "store" and resumed[-1]["counter"] >= newest
    assert dict(manifest_counters(job_dir))["micro_final.weights"] == 600
