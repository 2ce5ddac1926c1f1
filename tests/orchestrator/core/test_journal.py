from __future__ import annotations

from pathlib import Path

from orchestrator.core.journal import Journal


def test_append_and_read_back_in_order(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl", now=lambda: 100.0)
    for i in range(5):
        journal.append("tick", i=i)
    events = list(journal.events())
    assert [e["i"] for e in events] == [0, 1, 2, 3, 4]
    assert events[0]["t"] == 100.0 and events[0]["event"] == "tick"


def test_torn_last_line_is_skipped_and_next_event_survives(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.append("a")
    with open(path, "ab") as fh:
        fh.write(b'{"t": 1, "event": "to')  # kill -9 mid-write
    journal.append("b")
    assert [e["event"] for e in journal.events()] == ["a", "b"]


def test_tail_reads_only_the_end_and_matches_full_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    with open(journal.path, "w") as fh:
        fh.writelines(f'{{"t": {i}, "event": "e", "i": {i}, "pad": "{"x" * 40}"}}\n' for i in range(20000))
    tail = journal.tail(5)
    assert [e["i"] for e in tail] == [19995, 19996, 19997, 19998, 19999]
    assert journal.tail(3000)[0]["i"] == 17000


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "none.jsonl")
    assert list(journal.events()) == [] and journal.tail(3) == []
