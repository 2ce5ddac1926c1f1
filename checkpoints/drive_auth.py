"""Credentials and the Drive v3 client for :class:`checkpoints.drive_store.DriveStore`.

Ways to authenticate, chosen by the ``credentials`` file or the ``credentials_env`` variable's JSON content (its
``type``, or its fields when it has none):

* ``"service_account"``: a service-account key file. Service accounts have no storage quota of their own: point
  ``folder_id`` at a folder in a *shared drive* and set ``shared_drive: true``.
* ``"authorized_user"``: an OAuth user token file (``refresh_token``, ``client_id``, ``client_secret``), as
  ``orchestrator auth`` writes it on a laptop (google-auth-oauthlib's installed-app flow), or as
  ``Credentials.to_json()`` writes it (no ``type``: recognised by its fields).
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
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.core.errors import ConfigError, StorageError
from orchestrator.core.install import install_hint
from orchestrator.core.logs import get_logger

DRIVE_SCOPES = ("https://www.googleapis.com/auth/drive",)
DRIVE_API_URL_ENV = "ORCHESTRATOR_DRIVE_API_URL"

log = get_logger(__name__)


def load_credentials(path: Path | None, env: str | None = None) -> Any:
    """Credentials from a JSON file (``path``), from JSON content in the environment variable ``env`` (a Kaggle
    secret), or application default credentials when neither is given."""
    try:
        import google.auth
        from google.oauth2 import credentials as user_credentials
        from google.oauth2 import service_account
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the Drive API store needs google-auth and google-api-python-client: " + install_hint("drive")
        ) from exc
    if path is None and env is None:
        try:
            creds, _project = google.auth.default(scopes=list(DRIVE_SCOPES))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(
                "no Google credentials found for the Drive store: set store.credentials to a service-account or "
                "authorized-user JSON file (or store.credentials_env to an environment variable holding one), "
                "run `orchestrator auth` on a laptop, or on Colab run google.colab.auth.authenticate_user() first"
            ) from exc
        log.info("Drive store: using application default credentials")
        return creds
    source, info = _read_credentials(path, env)
    kind = credentials_kind(info)
    try:
        if kind == "service_account":
            creds = service_account.Credentials.from_service_account_info(info, scopes=list(DRIVE_SCOPES))
        elif kind == "authorized_user":
            creds = user_credentials.Credentials.from_authorized_user_info(info, scopes=list(DRIVE_SCOPES))
        else:
            raise ConfigError(
                f"Drive credentials {source} have type {info.get('type')!r}; expected 'service_account' or "
                "'authorized_user' (a service-account key, or a token file from `orchestrator auth` or "
                "Credentials.to_json())"
            )
    except ValueError as exc:  # missing fields; the message names fields, never values
        raise ConfigError(f"Drive credentials {source} are incomplete: {exc}") from exc
    log.info("Drive store: using %s credentials from %s", kind, source)
    return creds


def credentials_kind(info: dict[str, Any]) -> str | None:
    """``service_account`` / ``authorized_user`` from the JSON's ``type``, or from its fields when it has none
    (``google.oauth2.credentials.Credentials.to_json()`` writes no ``type``)."""
    kind = info.get("type")
    if kind is not None:
        return str(kind)
    if "private_key" in info and "client_email" in info:
        return "service_account"
    if "client_id" in info and ("refresh_token" in info or "token" in info):
        return "authorized_user"
    return None


def _read_credentials(path: Path | None, env: str | None) -> tuple[str, dict[str, Any]]:
    """(where they came from, the parsed JSON); errors name the file or variable, never the content."""
    if env is not None:
        source = f"in the environment variable {env}"
        text = os.environ.get(env)
        if not text:
            raise ConfigError(
                f"store.credentials_env names {env}, but that environment variable is not set (on Kaggle: "
                f"os.environ[{env!r}] = UserSecretsClient().get_secret(...) before running)"
            )
    else:
        assert path is not None
        path = Path(path).expanduser()
        source = f"file {path}"
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read Drive credentials file {path}: {type(exc).__name__}") from exc
    try:
        info = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"Drive credentials {source} are not JSON ({type(exc).__name__})") from None
    if not isinstance(info, dict):
        raise ConfigError(f"Drive credentials {source} are not a JSON object")
    return source, info


def drive_api_url() -> str | None:
    """The Drive API root URL from ``ORCHESTRATOR_DRIVE_API_URL`` (None: Google's)."""
    value = os.environ.get(DRIVE_API_URL_ENV, "").strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{DRIVE_API_URL_ENV}={value!r} is not an http(s) URL (e.g. https://www.googleapis.com/)")
    return value


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
