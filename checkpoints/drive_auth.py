"""Credentials and the Drive v3 client for :class:`checkpoints.drive_store.DriveStore`.

Three ways to authenticate, chosen by the ``credentials`` file (auto-detected from its JSON ``type``):

* ``"service_account"``: a service-account key file. Service accounts have no storage quota of their own: point
  ``folder_id`` at a folder in a *shared drive* and set ``shared_drive: true``.
* ``"authorized_user"``: an OAuth user token file (``refresh_token``, ``client_id``, ``client_secret``), e.g.
  written by ``google-auth-oauthlib``'s ``InstalledAppFlow`` on a laptop.
* no file: application default credentials (``google.auth.default``): on Colab after
  ``google.colab.auth.authenticate_user()``, on a GCE/Kaggle VM with an attached account, or
  ``GOOGLE_APPLICATION_CREDENTIALS``.

Scope: the full ``drive`` scope. ``drive.file`` only sees files this OAuth client created itself, so a job that
started on Colab writing through the Drive mount (or a folder a human made in the web UI) would look empty.

The client is built offline from the Drive v3 discovery document that ships inside google-api-python-client
(no network fetch at start-up). Tokens are never logged: errors name the credentials file, not its content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, StorageError
from orchestrator.core.install import install_hint
from orchestrator.core.logs import get_logger

DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)

log = get_logger(__name__)


def load_credentials(path: Path | None) -> Any:
    """Credentials from a service-account or authorized-user JSON file, or application default credentials."""
    try:
        import google.auth
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the Drive API store needs google-auth and google-api-python-client: " + install_hint("drive")
        ) from exc
    if path is None:
        try:
            creds, _project = google.auth.default(scopes=list(DRIVE_SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(
                "no Google credentials found for the Drive store: set store.credentials to a service-account or "
                "authorized-user JSON file, or on Colab run google.colab.auth.authenticate_user() first"
            ) from exc
        log.info("Drive store: using application default credentials")
        return creds
    path = Path(path).expanduser()
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read Drive credentials file {path}: {type(exc).__name__}") from exc
    kind = info.get("type") if isinstance(info, dict) else None
    try:
        if kind == "service_account":
            creds = service_account.Credentials.from_service_account_info(info, scopes=list(DRIVE_SCOPES))
        elif kind == "authorized_user":
            creds = user_credentials.Credentials.from_authorized_user_info(info, scopes=list(DRIVE_SCOPES))
        else:
            raise ConfigError(
                f"Drive credentials file {path} has type {kind!r}; expected 'service_account' or 'authorized_user'"
            )
    except ValueError as exc:  # missing fields; the message names fields, never values
        raise ConfigError(f"Drive credentials file {path} is incomplete: {exc}") from exc
    log.info("Drive store: using %s credentials from %s", kind, path)
    return creds


def static_drive_document(root_url: str | None = None) -> dict[str, Any]:
    """The Drive v3 discovery document shipped with the client library, optionally re-rooted (tests)."""
    from googleapiclient import discovery_cache

    text = discovery_cache.get_static_doc("drive", "v3")
    if text is None:  # pragma: no cover - the library always ships it
        raise StorageError("google-api-python-client ships no Drive v3 discovery document; upgrade it")
    doc: dict[str, Any] = json.loads(text)
    if root_url is not None:
        # rootUrl also roots the media upload paths (api_endpoint would keep https on them)
        doc["rootUrl"] = root_url if root_url.endswith("/") else root_url + "/"
        doc["baseUrl"] = doc["rootUrl"] + doc["servicePath"]
        doc["batchPath"] = "batch/drive/v3"
    return doc


def plain_http_factory() -> Callable[[], Any]:
    """A factory of unauthenticated httplib2 clients that treat 308 as "resume incomplete", not a redirect."""
    from googleapiclient.http import build_http

    return build_http


def authorized_http_factory(credentials: Any) -> Callable[[], Any]:
    """A factory of authorized httplib2 clients (one per thread: httplib2.Http is not thread-safe)."""
    import google_auth_httplib2
    from googleapiclient.http import build_http

    def make() -> Any:
        return google_auth_httplib2.AuthorizedHttp(credentials, http=build_http())

    return make


def build_drive_service(http_factory: Callable[[], Any], root_url: str | None = None) -> Any:
    """A Drive v3 service object built offline from the shipped discovery document."""
    from googleapiclient.discovery import build_from_document

    return build_from_document(static_drive_document(root_url), http=http_factory())
