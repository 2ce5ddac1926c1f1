"""Pretrained-weights download against a loopback HTTP server that honours Range and can drop connections."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobs.darknet.download import download
from orchestrator.core.errors import StorageError

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class Server:
    def __init__(self) -> None:
        self.body = PAYLOAD
        self.drop_after: list[int] = []  # per request: bytes to send before dropping the connection
        self.status_queue: list[int] = []
        self.ranges: list[str | None] = []
        self.honour_range = True


@pytest.fixture
def server() -> Iterator[tuple[Server, str]]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            state.ranges.append(self.headers.get("Range"))
            if state.status_queue:
                code = state.status_queue.pop(0)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, start = state.body, 0
            rng = self.headers.get("Range")
            if rng and state.honour_range:
                start = int(rng.split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            data = body[start:]
            if state.drop_after:
                data = data[: state.drop_after.pop(0)]
            self.wfile.write(data)
            self.wfile.flush()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}/darknet53.conv.74"
    httpd.shutdown()
    httpd.server_close()


def test_plain_download_with_sha256(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    dest = tmp_path / "weights dir ü" / "darknet53.conv.74"
    download(url, dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), backoff=0)
    assert dest.read_bytes() == PAYLOAD and not dest.with_name(dest.name + ".part").exists()
    assert state.ranges == [None]
    download(url, dest)  # present: no request
    assert len(state.ranges) == 1


def test_dropped_connection_resumes_with_range(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    state.drop_after = [300_000, 200_000]
    dest = tmp_path / "w"
    download(url, dest, backoff=0)
    assert dest.read_bytes() == PAYLOAD
    assert state.ranges == [None, "bytes=300000-", "bytes=500000-"]


def test_retries_on_503_then_succeeds(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    state.status_queue = [503, 429]
    download(url, tmp_path / "w", backoff=0)
    assert (tmp_path / "w").read_bytes() == PAYLOAD


def test_gives_up_keeping_the_partial_file_for_the_next_session(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    state.drop_after = [100_000] * 3
    dest = tmp_path / "w"
    with pytest.raises(StorageError, match="after 3 attempts.*resumes"):
        download(url, dest, attempts=3, backoff=0)
    part = tmp_path / "w.part"
    assert part.stat().st_size == 300_000 and not dest.exists()
    download(url, dest, backoff=0)  # next session
    assert dest.read_bytes() == PAYLOAD and state.ranges[-1] == "bytes=300000-"


def test_server_without_range_support_restarts_cleanly(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    state.honour_range = False
    (tmp_path / "w.part").write_bytes(PAYLOAD[:1000])
    download(url, tmp_path / "w", backoff=0)
    assert (tmp_path / "w").read_bytes() == PAYLOAD


def test_wrong_sha_html_page_and_404_are_refused(server: tuple[Server, str], tmp_path: Path) -> None:
    state, url = server
    with pytest.raises(StorageError, match="sha256"):
        download(url, tmp_path / "a", sha256="0" * 64, backoff=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "a.part").exists()
    state.body = b"<!DOCTYPE html><html><title>Google Drive - Virus scan warning</title></html>"
    with pytest.raises(StorageError, match="HTML"):
        download(url, tmp_path / "b", backoff=0)
    state.status_queue = [404]
    with pytest.raises(StorageError, match="404"):
        download(url, tmp_path / "c", backoff=0)
    with pytest.raises(StorageError, match="http"):
        download("ftp://x/y", tmp_path / "d")
