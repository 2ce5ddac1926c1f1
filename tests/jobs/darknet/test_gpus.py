"""Multi-GPU darknet: ``train.gpus`` -> ``-gpus``, AlexeyAB's one-GPU warm-up across sessions and GPU counts.

The GPU probe is faked where it enters: a stand-in ``nvidia-smi`` (tests/fakes/nvidia-smi) first on PATH, asked by
the real ``orchestrator.core.gpu``; the stand-in darknet records the ``-gpus`` of each launch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jobs.darknet.gpus import WARMUP_ITERATIONS, choose_gpus
from orchestrator.core import gpu
from tests.jobs.darknet.test_job import ROOT, cli, darknet_logs, iterations, job_dir, job_yaml  # noqa: F401

FAKES = ROOT / "tests" / "fakes"


def test_auto_warms_up_on_one_gpu_then_uses_all() -> None:
    first = choose_gpus("auto", visible=2, iteration=0)
    assert first.flag() == ["-gpus", "0"] and first.switch_at == WARMUP_ITERATIONS and first.later == (0, 1)
    assert first.describe() == "0 (then 0,1 from iteration 1000)"
    assert choose_gpus("auto", visible=2, iteration=1000).flag() == ["-gpus", "0,1"]
    assert choose_gpus("auto", visible=1, iteration=0).flag() == ["-gpus", "0"]
    cpu = choose_gpus("auto", visible=0, iteration=5000)
    assert cpu.flag() == [] and cpu.describe() == "none (CPU)"


def test_an_explicit_list_drops_gpus_this_machine_lacks() -> None:
    assert choose_gpus([0, 1], visible=4, iteration=0).flag() == ["-gpus", "0,1"]  # as given: no warm-up
    smaller = choose_gpus([0, 1, 2, 3], visible=2, iteration=1500)
    assert smaller.flag() == ["-gpus", "0,1"] and "GPU 2, 3 not on this machine" in smaller.note


def test_cuda_visible_devices_narrows_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    facts = gpu.GpuFacts(gpus=gpu.parse_gpu_query("0, T4, 15360 MiB, 7.5\n1, T4, 15360 MiB, 7.5\n"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu.visible_gpu_count(facts) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert gpu.visible_gpu_count(facts) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu.visible_gpu_count(facts) == 0


def _launches(record: Path) -> list[tuple[str | None, int]]:
    lines = record.read_text().splitlines() if record.exists() else []
    return [(entry["gpus"], entry["start"]) for entry in map(json.loads, lines)]


def test_auto_with_two_gpus_trains_on_one_first_and_on_both_after_1000_across_resumes(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    record = job_dir / "launches.jsonl"
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("FAKE_DARKNET_RECORD", str(record))
    cfg = job_dir / "micro.cfg"

    def train_to(max_batches: int, gpus: int, *args: str, sleep: str = "0.04") -> str:
        text = cfg.read_text()
        cfg.write_text(text.replace(text[text.index("max_batches="):].split("\n", 1)[0], f"max_batches={max_batches}"))
        (job_dir / "job.yaml").write_text(job_yaml("alexeyab", sleep=sleep))
        monkeypatch.setenv("FAKE_GPUS", str(gpus))
        gpu.detect_gpus.cache_clear()  # the probe asks nvidia-smi once per process: this is another machine
        result = cli(job_dir, "run", "job.yaml", *args)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stderr

    # session 1 ends (completes) at 950, before the warm-up is over: one GPU throughout
    out = train_to(950, gpus=2, sleep="0")
    assert _launches(record) == [("0", 0)]
    assert "darknet on GPU 0 (then 0,1 from iteration 1000) of 2 visible" in out
    # session 2 resumes at 950 on one GPU and goes on from darknet's backup at 1000 on both
    out = train_to(1100, 2, "--reopen")
    assert _launches(record)[1:] == [("0", 950), ("0,1", 1000)]
    second = iterations(darknet_logs(job_dir)[1])
    assert second[0] == 951 and second[-1] == 1100
    # stopped right after the backup at 1000 (not at the next one, 100 on): only what ran during one poll is redone
    assert len(second) - len(set(second)) < 20
    status = cli(job_dir, "status", "job.yaml").stdout
    assert "gpus       0,1" in status
    # session 3 on a machine with one GPU: just goes on, on that one
    train_to(1150, 1, "--reopen")
    assert _launches(record)[3:] == [("0", 1100)]
    gpu.detect_gpus.cache_clear()  # the next tests see this machine again
