from __future__ import annotations

from orchestrator.core.gpu import Gpu, GpuFacts, parse_gpu_query

KAGGLE_T4X2 = "0, Tesla T4, 15360 MiB, 7.5\n1, Tesla T4, 15360 MiB, 7.5\n"


def test_two_gpus_are_counted_and_described() -> None:
    facts = GpuFacts(gpus=parse_gpu_query(KAGGLE_T4X2))
    assert facts.count == 2 and facts.present and facts.compute_capability == "7.5"
    assert [gpu.index for gpu in facts.gpus] == [0, 1]
    assert facts.describe() == "2 x Tesla T4, 15360 MiB, 7.5"


def test_one_gpu_and_none() -> None:
    one = GpuFacts(gpus=parse_gpu_query("0, NVIDIA A100-SXM4-40GB, 40960 MiB, 8.0"))
    assert one.describe() == "NVIDIA A100-SXM4-40GB, 40960 MiB, 8.0"
    assert GpuFacts().describe() is None and not GpuFacts().present


def test_garbage_and_unknown_capability_are_tolerated() -> None:
    rows = parse_gpu_query("NVIDIA-SMI has failed because it couldn't communicate with the driver\n"
                           "0, Old GPU, 4096 MiB, [N/A]\n")
    assert rows == (Gpu(0, "Old GPU", "4096 MiB", None),)
