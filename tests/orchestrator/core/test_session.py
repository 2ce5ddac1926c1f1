from __future__ import annotations

from orchestrator.core.session import SessionClock, on_ephemeral_vm, session_start


def test_boot_clock_on_colab_counts_from_machine_boot() -> None:
    start, source = session_start("auto", now=10_000.0, uptime=3_600.0, ephemeral=True)
    assert (start, source) == (6_400.0, "boot")


def test_process_clock_elsewhere() -> None:
    assert session_start("auto", now=10_000.0, uptime=3_600.0, ephemeral=False) == (10_000.0, "process")
    assert session_start("boot", now=10_000.0, uptime=None, ephemeral=False) == (10_000.0, "process")


def test_ephemeral_detection_from_environment() -> None:
    assert on_ephemeral_vm({"COLAB_RELEASE_TAG": "x"})
    assert on_ephemeral_vm({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"})
    assert not on_ephemeral_vm({"HOME": "/root"})


def test_deadline_is_budget_minus_margin_with_a_fake_clock() -> None:
    now = [1000.0]
    clock = SessionClock(started=1000.0, budget=12 * 3600, margin=900, now=lambda: now[0])
    assert clock.seconds_left() == 12 * 3600 - 900
    now[0] += 12 * 3600 - 901
    assert not clock.expired()
    now[0] += 1
    assert clock.expired()
