"""``orchestrator auth``: sign in to Google Drive on a laptop and write a token file the Drive store accepts.

It runs google-auth-oauthlib's installed-app flow: a browser opens Google's consent page, Google redirects to a
short-lived server on ``localhost``, and the flow exchanges the code for tokens. The result is written as an
authorized-user JSON (``"type": "authorized_user"``, ``refresh_token``, ``client_id``, ``client_secret``, the
current ``token`` and its ``expiry``), atomically and readable by the owner only. Point ``store.credentials`` at
it. The client secrets file is an OAuth client of type "Desktop app" from the Google Cloud console.

Tokens are never printed or logged; messages name the files only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from checkpoints.drive_auth import DRIVE_SCOPES
from orchestrator.core.atomic import atomic_open
from orchestrator.core.errors import ConfigError
from orchestrator.core.install import install_hint
from orchestrator.core.logs import get_logger

log = get_logger(__name__)

PROMPT = "Open this address in a browser to let orchestrator use your Google Drive:\n\n    {url}\n"
DONE = "Signed in. You can close this window and go back to the terminal."


def sign_in(
    client_secrets: Path,
    token_path: Path,
    *,
    port: int = 0,
    open_browser: bool = True,
    show: Callable[[str], None] = print,
) -> Path:
    """Run the installed-app flow with ``client_secrets`` and write the token file; returns its path."""
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError as exc:
        raise ConfigError(f"`orchestrator auth` needs google-auth-oauthlib: {install_hint('drive')}") from exc
    client_secrets = Path(client_secrets).expanduser()
    token_path = Path(token_path).expanduser()
    try:
        flow = InstalledAppFlow.from_client_secrets_file(str(client_secrets), scopes=list(DRIVE_SCOPES))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cannot use {client_secrets} as OAuth client secrets ({type(exc).__name__}): download the JSON of an "
            "OAuth client of type 'Desktop app' from the Google Cloud console (APIs & Services > Credentials)"
        ) from None
    creds = flow.run_local_server(
        host="localhost",
        port=port,
        open_browser=open_browser,
        authorization_prompt_message=PROMPT,  # the consent address (no secret), for a browser elsewhere
        success_message=DONE,
    )
    info = json.loads(creds.to_json())
    info["type"] = "authorized_user"
    write_token(token_path, info)
    show(f"token written to {token_path}; in the job file set\n    store: {{type: drive, credentials: {token_path}}}")
    return token_path


def write_token(path: Path, info: dict[str, object]) -> None:
    """Write the token JSON atomically, readable by the owner only (it grants access to the Drive)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write((json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    log.info("Drive token written to %s", path)


__all__ = ["sign_in", "write_token"]
