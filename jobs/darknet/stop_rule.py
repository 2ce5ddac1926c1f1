"""When to stop darknet: a pure rule fed with what the supervisor sees, answering with a plain decision.

Darknet cannot be asked to save on demand; it writes a backup every ``savelast``/100 iterations. So a clean stop
(the session deadline, a first Ctrl-C/SIGTERM) waits for the next backup to be whole on disk, at most
``stop_wait`` seconds, and then asks darknet to stop; everything else (a lost lease, a fatal problem) stops it
at once, and a second Ctrl-C kills it. A backup written shortly before the stop request counts: when the last
one is recent (within ``recent_fraction`` of the time between the last two backups) or no iteration has run
since, there is nothing worth waiting for.

The rule holds no process and reads no clock of its own (``clock`` is injected), so every case is a unit test::

    rule = StopRule(stop_wait=600, clock=time.monotonic)
    rule.iteration(1)                    # an iteration line of darknet's log
    rule.backup_started("x_last.weights", 100)   # "Saving weights to .../x_last.weights" after iteration 100
    rule.stop_requested("deadline")      # -> WaitForBackup(until=...) while that backup is being written
    rule.iteration(101)                  # darknet moved on: the backup is whole -> StopNow(after_backup=True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The darknet job stops darknet to relaunch it on more GPUs (jobs.darknet.gpus): after a whole backup.
GPU_SWITCH = "more GPUs"
#: Stop reasons that wait for the next backup; any other reason stops darknet at once.
CLEAN_STOP_REASONS = frozenset({"deadline", "signal", GPU_SWITCH})
#: Default share of the backup interval within which the last backup counts as recent.
RECENT_FRACTION = 0.25


@dataclass(frozen=True)
class KeepGoing:
    """No stop requested: let darknet train."""


@dataclass(frozen=True)
class WaitForBackup:
    """A clean stop is pending: keep darknet running until its next backup is whole, at most until ``until``."""

    until: float
    reason: str


@dataclass(frozen=True)
class StopNow:
    """Ask darknet to stop now (SIGTERM). ``after_backup``: the newest backup holds the latest work."""

    reason: str
    after_backup: bool
    why: str


@dataclass(frozen=True)
class Kill:
    """Kill darknet at once (SIGKILL): the user insisted."""

    reason: str


@dataclass(frozen=True)
class Exited:
    """Darknet exited by itself; ``stop_reason`` is the stop that was pending then, if any."""

    code: int
    stop_reason: str | None


StopDecision = KeepGoing | WaitForBackup | StopNow | Kill | Exited


@dataclass(frozen=True)
class PendingBackup:
    """A backup darknet began writing after iteration ``iteration``; the file named ``name`` is whole once its
    header holds at least that iteration (an older file of the same name may still be whole on disk)."""

    name: str
    iteration: int


@dataclass(frozen=True)
class _Backup:
    iteration: int
    at: float


class StopRule:
    """The darknet supervisor's stop decision, driven by events and an injected clock."""

    def __init__(self, stop_wait: float, clock: Callable[[], float],
                 recent_fraction: float = RECENT_FRACTION) -> None:
        if stop_wait < 0 or not 0 <= recent_fraction <= 1:
            raise ValueError(f"stop_wait must be >= 0 and recent_fraction within [0, 1] "
                             f"(got {stop_wait}, {recent_fraction})")
        self.stop_wait = stop_wait
        self.recent_fraction = recent_fraction
        self._clock = clock
        self._iteration = 0
        self._pending: PendingBackup | None = None
        self._last: _Backup | None = None
        self._interval: float | None = None  # seconds between the last two backups
        self._reason: str | None = None
        self._stop_at = 0.0
        self._final: StopNow | Kill | Exited | None = None

    # -- what the supervisor may ask -------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        return self._reason is not None

    @property
    def backup_to_check(self) -> PendingBackup | None:
        """While a clean stop waits on a backup being written: the file to check for wholeness."""
        return self._pending if isinstance(self.tick(), WaitForBackup) else None

    @property
    def last_backup_iteration(self) -> int | None:
        return self._last.iteration if self._last else None

    # -- events ----------------------------------------------------------------------------------------------
    def iteration(self, number: int) -> StopDecision:
        """Darknet logged iteration ``number``: a backup it began before is now whole."""
        if self._pending is not None and number > self._pending.iteration:
            self._backup_done(self._pending.iteration)
        self._iteration = max(self._iteration, number)
        return self.tick()

    def backup_started(self, name: str, iteration: int | None = None) -> StopDecision:
        """Darknet logged that it is writing the backup ``name`` (after ``iteration``, default the latest)."""
        self._pending = PendingBackup(name, self._iteration if iteration is None else iteration)
        return self.tick()

    def backup_verified(self, name: str, counter: int) -> StopDecision:
        """The file ``name`` was read whole, holding iteration ``counter``."""
        pending = self._pending
        if pending is not None and name == pending.name and counter >= pending.iteration:
            self._backup_done(pending.iteration)
        return self.tick()

    def stop_requested(self, reason: str) -> StopDecision:
        """The runner asks the job to stop (``deadline``, ``signal``, ``lease-lost``, ...); repeats are ignored."""
        if self._reason is not None or self._final is not None:
            return self.tick()
        self._reason, self._stop_at = reason, self._clock()
        if reason not in CLEAN_STOP_REASONS:
            return self._decide(StopNow(reason, after_backup=False, why=f"{reason}: stopping darknet now"))
        if self._pending is None:
            recent = self._recent_backup()
            if recent:
                return self._decide(StopNow(reason, after_backup=True, why=recent))
        return self.tick()

    def second_signal(self) -> StopDecision:
        """A second Ctrl-C: stop at once."""
        if not isinstance(self._final, Exited):
            self._final = Kill("second signal")
        return self.tick()

    def process_exited(self, code: int) -> StopDecision:
        if self._final is None:
            self._final = Exited(code, self._reason)
        return self.tick()

    def tick(self) -> StopDecision:
        """The decision now (time passes: a clean stop gives up waiting after ``stop_wait``)."""
        if self._final is not None:
            return self._final
        if self._reason is None:
            return KeepGoing()
        until = self._stop_at + self.stop_wait
        if self._clock() >= until:
            return self._decide(StopNow(self._reason, after_backup=False,
                                        why=f"no new backup within stop_wait ({self.stop_wait:g}s): stopping darknet"))
        return WaitForBackup(until, self._reason)

    # -- the rule --------------------------------------------------------------------------------------------
    def _backup_done(self, iteration: int) -> None:
        self._pending = None
        now = self._clock()
        if self._last is not None and iteration <= self._last.iteration:
            return  # a second file of the same iteration (e.g. _1000.weights beside _last.weights)
        if self._last is not None:
            self._interval = now - self._last.at
        self._last = _Backup(iteration, now)
        if self._reason in CLEAN_STOP_REASONS and self._final is None:
            self._decide(StopNow(self._reason, after_backup=True,
                                 why=f"the backup of iteration {iteration} is whole: stopping darknet"))

    def _recent_backup(self) -> str | None:
        """Why the last backup already holds (nearly) all the work, or None."""
        last = self._last
        if last is None:
            return None
        if last.iteration >= self._iteration:
            return f"no iteration since the backup of iteration {last.iteration}: stopping darknet now"
        age = self._stop_at - last.at
        if self._interval is not None and age < self.recent_fraction * self._interval:
            return (f"the backup of iteration {last.iteration} is {age:.0f}s old (backups every "
                    f"{self._interval:.0f}s): stopping darknet now")
        return None

    def _decide(self, decision: StopNow | Kill) -> StopDecision:
        if self._final is None:
            self._final = decision
        return self._final
