"""``orchestrator auth``: google-auth-oauthlib's installed-app flow against a loopback OAuth server, the token
file it writes, and that file used by a Drive store (``ORCHESTRATOR_DRIVE_API_URL``) that checks the token."""

from __future__ import annotations

import json
import stat
import threading
import time
import urllib.request
import webbrowser
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from checkpoints.drive_auth import DRIVE_SCOPES, load_credentials
from orchestrator.app.cli import main
from orchestrator.core.store_spec import DriveStoreSpec
from tests.checkpoints.drive_server import DriveFake

ACCESS_TOKEN = "ya29.loopback-ACCESS"
REFRESH_TOKEN = "1//loopback-REFRESH"


class _OAuthServer:
    """Google's token endpoint as far as the installed-app flow uses it: code -> tokens."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, list[str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = parse_qs(body)
                owner.exchanges.append(form)
                if form.get("grant_type") != ["authorization_code"] or form.get("code") != ["the-code"]:
                    self._answer(400, {"error": "invalid_grant", "error_description": "Bad Request"})
                    return
                self._answer(200, {
                    "access_token": ACCESS_TOKEN, "expires_in": 3599, "refresh_token": REFRESH_TOKEN,
                    "scope": " ".join(DRIVE_SCOPES), "token_type": "Bearer",
                })

            def _answer(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


class _Browser:
    """A person who opens the consent page and says yes: Google redirects to the flow's localhost server."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)
        query = parse_qs(urlsplit(url).query)
        redirect = query["redirect_uri"][0]
        state = query["state"][0]

        def consent() -> None:
            time.sleep(0.2)  # the flow starts waiting for the redirect after opening the browser
            urllib.request.urlopen(f"{redirect}?state={state}&code=the-code&scope={DRIVE_SCOPES[0]}", timeout=10)

        threading.Thread(target=consent, daemon=True).start()
        return True


@pytest.fixture
def oauth() -> Iterator[_OAuthServer]:
    server = _OAuthServer()
    yield server
    server.server.shutdown()


def test_auth_runs_the_installed_app_flow_and_writes_a_token_the_store_accepts(
    oauth: _OAuthServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the loopback token endpoint is plain http
    browser = _Browser()
    monkeypatch.setattr(webbrowser, "get", lambda using=None: browser)
    secrets = tmp_path / "client secret ü.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": "123.apps.googleusercontent.com", "client_secret": "CLIENT-SECRET-VALUE",
        "auth_uri": f"{oauth.url}/auth", "token_uri": f"{oauth.url}/token", "redirect_uris": ["http://localhost"],
    }}))
    token = tmp_path / "conf dir" / "drive token.json"

    assert main(["auth", "--client-secrets", str(secrets), "--token", str(token)]) == 0

    assert len(browser.opened) == 1 and browser.opened[0].startswith(f"{oauth.url}/auth?")
    assert len(oauth.exchanges) == 1
    out = capsys.readouterr().out
    assert str(token) in out and ACCESS_TOKEN not in out and REFRESH_TOKEN not in out
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    saved = json.loads(token.read_text())
    assert saved["type"] == "authorized_user" and saved["refresh_token"] == REFRESH_TOKEN

    # the store uses it as is (a valid token, no refresh) against the API the environment points at
    fake = DriveFake().start()
    try:
        fake.required_token = ACCESS_TOKEN
        monkeypatch.setenv("ORCHESTRATOR_DRIVE_API_URL", fake.root_url)
        folder = fake.add_folder("laptop store")
        from checkpoints.drive_store import DriveStore

        store = DriveStore.from_spec(DriveStoreSpec(type="drive", folder_id=folder, credentials=token))
        store.check_usable()
        store.write_bytes("hello.txt", b"from the laptop")
        assert [f.content for f in fake.objects()] == [b"from the laptop"]
    finally:
        fake.stop()
    creds = load_credentials(token)
    assert creds.token == ACCESS_TOKEN and creds.valid


def test_auth_with_a_bad_client_secrets_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "secrets.json"
    bad.write_text('{"web": {"client_id": "x"}}')
    assert main(["auth", "--client-secrets", str(bad), "--token", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "Desktop app" in err and str(bad) in err
    assert not (tmp_path / "t.json").exists()
