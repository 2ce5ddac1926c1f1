"""Notifications through apprise's json:// to a loopback receiver (and to one that is down)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.app.notify import human_count, session_message
from orchestrator.core.state import JobRecord, JobState, ProgressRecord, SessionRecord
from tests.conftest import cli, job_yaml


class Receiver:
    """A webhook receiver as apprise's json:// posts to it: one JSON object {title, message, type} per POST."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def down_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"json://127.0.0.1:{port}/down"


def with_notify(*urls: str, **kwargs: str) -> str:
    return job_yaml(**kwargs) + "notify:\n" + "".join(f"  - {url}\n" for url in urls)


def test_paused_and_completed_sessions_are_told_and_a_receiver_that_is_down_changes_nothing(
        job_dir: Path, receiver: Receiver) -> None:
    (job_dir / "job.yaml").write_text(with_notify(receiver.url, down_url(), budget="0.8s"))
    env = {"STEPS": "20", "STEP_SECONDS": "0.1"}
    first = cli(job_dir, "run", "job.yaml", env=env)
    assert first.returncode == 75, first.stderr  # paused, as without notifications
    assert "notify" in first.stderr  # the receiver that is down is logged...
    assert len(receiver.received) == 1  # ...and the one that is up got its message
    paused = receiver.received[0]
    assert paused["title"] == "count: paused" and paused["type"] == "warning"
    text = paused["message"]
    assert "job 'count' paused (session 1): deadline" in text and "Run the same cell again" in text
    assert "/20 it done" in text and "left" in text and "more sessions at this pace" in text
    for _ in range(30):
        result = cli(job_dir, "run", "job.yaml", env=env)
        if result.returncode == 0:
            break
        assert result.returncode == 75, result.stderr
    done = receiver.received[-1]
    assert done["title"] == "count: completed" and done["type"] == "success"
    assert "job 'count' completed" in done["message"]


def test_a_failed_job_is_told_with_the_reason_and_the_fix(job_dir: Path, receiver: Receiver) -> None:
    (job_dir / "job.yaml").write_text(with_notify(receiver.url))
    result = cli(job_dir, "run", "job.yaml", env={"STEPS": "10", "FAIL_AT": "4"})
    assert result.returncode == 4
    [failed] = receiver.received
    assert failed["title"] == "count: FAILED" and failed["type"] == "failure"
    assert "crashed 3 times" in failed["message"] and "--retry" in failed["message"]


def test_a_url_that_is_not_a_url_is_refused_naming_the_field(job_dir: Path) -> None:
    (job_dir / "job.yaml").write_text(job_yaml() + "notify: [telegram-bot-token]\n")
    result = cli(job_dir, "run", "job.yaml")
    assert result.returncode != 0 and "notify" in result.stderr and "Traceback" not in result.stderr


def test_sessions_left_at_this_pace_and_human_units(job_dir: Path) -> None:
    from orchestrator.app.jobfile import load_job_file

    spec = load_job_file(job_dir / "job.yaml")  # budget 1h, margin 0
    record = JobRecord(job="count", kind="command", state=JobState.PAUSED, reason="deadline",
                       progress=ProgressRecord(counter=2000, total=10000, unit="iter", gained=2000,
                                               running_seconds=3600))
    record.sessions.append(SessionRecord(id="s", index=1, host="vm", pid=1, started=0.0))
    message = session_message(record, spec)
    assert message is not None
    assert "2000/10k iter done (20%), 8000 left; about 4 more sessions at this pace." in message.body
    assert human_count(1234567) == "1.23M" and human_count(950) == "950"
