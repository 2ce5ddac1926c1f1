from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import StateError
from orchestrator.core.journal import Journal
from orchestrator.core.paths import JobPaths
from orchestrator.core.state import TRANSITIONS, JobRecord, JobState, StateStore, check_transition, decode_state


def make_store(tmp_path: Path) -> StateStore:
    paths = JobPaths(home=tmp_path / "home ü", local=tmp_path / "work")
    paths.home.mkdir()
    return StateStore(paths, Journal(paths.journal))


def test_every_state_has_a_row_and_completed_leaves_only_to_preparing() -> None:
    assert set(TRANSITIONS) == set(JobState)
    assert TRANSITIONS[JobState.COMPLETED] == frozenset({JobState.PREPARING})


def test_illegal_transition_names_both_states() -> None:
    with pytest.raises(StateError, match="illegal transition completed -> running.*allowed from completed: preparing"):
        check_transition(JobState.COMPLETED, JobState.RUNNING)
    with pytest.raises(StateError, match="new -> completed.*allowed from new: preparing"):
        check_transition(JobState.NEW, JobState.COMPLETED)


def test_transition_persists_and_journals(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    record = JobRecord(job="j", kind="command")
    store.transition(record, JobState.PREPARING, "session start")
    store.transition(record, JobState.RUNNING)
    loaded = store.load()
    assert loaded is not None and loaded.state is JobState.RUNNING and loaded.seq == 2
    events = [e for e in store.journal.events() if e["event"] == "transition"]
    assert [(e["from_state"], e["to_state"]) for e in events] == [("new", "preparing"), ("preparing", "running")]


def test_new_job_has_no_record(tmp_path: Path) -> None:
    assert make_store(tmp_path).load() is None


@pytest.mark.parametrize("damage", [
    lambda b: b[: len(b) // 2],                 # torn write
    lambda b: b"",                              # zero bytes
    lambda b: b.replace(b'"running"', b'"completed"'),  # edited: checksum no longer matches
])
def test_corrupt_state_recovers_previous_copy_and_says_so(tmp_path: Path, damage) -> None:
    store = make_store(tmp_path)
    record = JobRecord(job="j", kind="command")
    store.transition(record, JobState.PREPARING)
    store.transition(record, JobState.RUNNING)
    store.paths.state.write_bytes(damage(store.paths.state.read_bytes()))
    loaded = store.load()
    assert loaded is not None and loaded.state is JobState.PREPARING  # the previous good copy
    recovered = [e for e in store.journal.events() if e["event"] == "state_recovered"]
    assert len(recovered) == 1 and recovered[0]["from_file"] == "state.prev.json"


def test_both_copies_corrupt_refuses_instead_of_resetting(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    record = JobRecord(job="j", kind="command")
    store.transition(record, JobState.PREPARING)
    store.transition(record, JobState.RUNNING)
    store.paths.state.write_bytes(b"{garbage")
    store.paths.state_prev.write_bytes(b"")
    with pytest.raises(StateError, match="refusing to reset"):
        store.load()


def test_deleted_state_with_a_journal_refuses(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    record = JobRecord(job="j", kind="command")
    store.transition(record, JobState.PREPARING)
    store.paths.state.unlink()
    store.paths.state_prev.unlink(missing_ok=True)
    with pytest.raises(StateError, match="journal but no state file"):
        store.load()


def test_decode_rejects_foreign_json() -> None:
    with pytest.raises(ValueError, match="not an orchestrator-state"):
        decode_state(b'{"hello": 1}')


def test_progress_rate_and_eta_exclude_time_between_sessions() -> None:
    record = JobRecord(job="j", kind="command")
    record.progress.counter, record.progress.total = 50, 150
    record.progress.gained, record.progress.running_seconds = 50, 100.0
    assert record.progress.rate() == 0.5
    assert record.progress.eta_seconds() == 200.0
