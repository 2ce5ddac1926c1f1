"""The darknet stop rule without processes: events in, decisions out, a fake clock."""

from __future__ import annotations

import pytest

from jobs.darknet.stop_rule import Exited, KeepGoing, Kill, StopNow, StopRule, WaitForBackup


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def trained(rule: StopRule, clock: FakeClock, first: int, last: int, *, seconds_each: float = 1.0,
            backup_every: int = 100, name: str = "m_last.weights") -> None:
    """Feed iterations ``first..last`` one second apart, with a backup after every ``backup_every``-th."""
    for number in range(first, last + 1):
        clock.advance(seconds_each)
        assert rule.iteration(number) == KeepGoing()
        if number % backup_every == 0:
            rule.backup_started(name, number)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_no_stop_requested_keeps_darknet_training(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=60, clock=clock)
    trained(rule, clock, 1, 250)
    clock.advance(10_000)
    assert rule.tick() == KeepGoing()
    assert rule.last_backup_iteration == 200


def test_deadline_waits_for_the_next_backup_then_stops_once_it_is_whole(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 150)  # backup at 100, 50 s ago; backups every 100 s
    decision = rule.stop_requested("deadline")
    assert decision == WaitForBackup(until=clock.now + 600, reason="deadline")
    for number in range(151, 201):
        clock.advance(1)
        assert isinstance(rule.iteration(number), WaitForBackup)
    rule.backup_started("m_last.weights", 200)
    assert rule.backup_to_check is not None and rule.backup_to_check.iteration == 200
    assert isinstance(rule.tick(), WaitForBackup)  # still being written
    decision = rule.iteration(201)  # darknet moved on: the backup of 200 is complete
    assert isinstance(decision, StopNow) and decision.after_backup and decision.reason == "deadline"
    assert rule.last_backup_iteration == 200


def test_a_whole_file_on_disk_ends_the_wait_before_the_next_iteration_line(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 150)
    rule.stop_requested("deadline")
    rule.backup_started("m_last.weights", 200)
    # the old file of that name, still whole, holds iteration 100: not the one we wait for
    assert isinstance(rule.backup_verified("m_last.weights", 100), WaitForBackup)
    assert isinstance(rule.backup_verified("m.backup", 200), WaitForBackup)  # another file
    decision = rule.backup_verified("m_last.weights", 200)
    assert isinstance(decision, StopNow) and decision.after_backup


def test_the_wait_ends_at_stop_wait_without_a_backup(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=30, clock=clock)
    trained(rule, clock, 1, 150)
    rule.stop_requested("deadline")
    clock.advance(29.9)
    assert isinstance(rule.tick(), WaitForBackup)
    clock.advance(0.1)
    decision = rule.tick()
    assert isinstance(decision, StopNow) and not decision.after_backup and "stop_wait" in decision.why
    rule.iteration(151)
    rule.backup_started("m_last.weights", 200)
    assert rule.iteration(201) == decision  # decided once: later events do not change it


def test_a_backup_written_shortly_before_the_stop_request_counts(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock, recent_fraction=0.25)
    trained(rule, clock, 1, 218)  # backups seen whole at 101 and 201 (100 s apart); the last is 17 s old
    decision = rule.stop_requested("deadline")
    assert isinstance(decision, StopNow) and decision.after_backup and "17s old" in decision.why


def test_an_older_backup_is_not_recent_enough(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock, recent_fraction=0.25)
    trained(rule, clock, 1, 227)  # 26 s > 25% of 100 s
    assert isinstance(rule.stop_requested("deadline"), WaitForBackup)


def test_recent_fraction_zero_always_waits_for_the_next_backup(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock, recent_fraction=0.0)
    trained(rule, clock, 1, 201)
    assert isinstance(rule.stop_requested("deadline"), WaitForBackup)


def test_one_backup_alone_gives_no_interval_so_the_stop_waits(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 101)
    assert isinstance(rule.stop_requested("deadline"), WaitForBackup)


def test_nothing_to_wait_for_when_no_iteration_ran_since_the_backup(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 100)
    rule.backup_verified("m_last.weights", 100)
    clock.advance(90)  # a slow iteration: no newer work than the backup
    decision = rule.stop_requested("deadline")
    assert isinstance(decision, StopNow) and decision.after_backup


def test_a_second_file_of_the_same_iteration_does_not_shrink_the_interval(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock, recent_fraction=0.25)
    trained(rule, clock, 1, 1000)  # AlexeyAB at 1000: _last and _1000.weights, moments apart
    rule.backup_verified("m_last.weights", 1000)
    rule.backup_started("m_1000.weights", 1000)
    clock.advance(0.01)
    rule.backup_verified("m_1000.weights", 1000)
    trained(rule, clock, 1001, 1020)  # 20 s after the backup: recent against 100 s, not against 0.01 s
    assert isinstance(rule.stop_requested("deadline"), StopNow)


def test_a_signal_asks_for_the_same_clean_stop_and_a_second_one_kills(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 150)
    assert rule.stop_requested("signal") == WaitForBackup(until=clock.now + 600, reason="signal")
    clock.advance(5)
    assert rule.stop_requested("signal") == WaitForBackup(until=clock.now + 595, reason="signal")  # a repeat
    assert rule.second_signal() == Kill("second signal")
    assert rule.iteration(151) == Kill("second signal")


def test_a_second_signal_after_the_stop_was_decided_still_kills(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=0, clock=clock)
    trained(rule, clock, 1, 150)
    assert isinstance(rule.stop_requested("signal"), StopNow)
    assert rule.second_signal() == Kill("second signal")


@pytest.mark.parametrize("reason", ["lease-lost", "fatal"])
def test_other_reasons_stop_at_once_even_while_a_backup_is_written(clock: FakeClock, reason: str) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 199)
    rule.backup_started("m_last.weights", 200)
    decision = rule.stop_requested(reason)
    assert decision == StopNow(reason, after_backup=False, why=f"{reason}: stopping darknet now")


def test_a_stop_while_a_backup_is_being_written_waits_for_that_backup(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 200)  # "Saving weights" logged after 200, not yet followed by 201
    assert isinstance(rule.stop_requested("deadline"), WaitForBackup)
    decision = rule.iteration(201)
    assert isinstance(decision, StopNow) and decision.after_backup


def test_process_exit_is_reported_with_the_pending_stop(clock: FakeClock) -> None:
    rule = StopRule(stop_wait=600, clock=clock)
    trained(rule, clock, 1, 150)
    assert rule.process_exited(0) == Exited(0, None)
    other = StopRule(stop_wait=600, clock=clock)
    trained(other, clock, 1, 150)
    other.stop_requested("deadline")
    assert other.process_exited(1) == Exited(1, "deadline")
    assert other.second_signal() == Exited(1, "deadline")  # nothing left to kill


def test_bad_settings_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="recent_fraction"):
        StopRule(stop_wait=10, clock=clock, recent_fraction=1.5)
    with pytest.raises(ValueError, match="stop_wait"):
        StopRule(stop_wait=-1, clock=clock)
