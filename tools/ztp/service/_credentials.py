"""The admin and gateway credentials of a self-contained installation (``ztp serve``, the demo,
the storm bench): kept in ``<data dir>/credentials.json`` (mode 0600), made on first start.

The file is the only copy of the secrets (the database holds their hashes), so a database that
already has the clients but no file is an error, not a reason to make new ones silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._client import Credentials, bootstrap_credentials
from ._errors import ServiceError
from ._settings import Settings

__all__ = ["CREDENTIALS_FILE", "CredentialsError", "load_or_bootstrap_credentials"]

CREDENTIALS_FILE = "credentials.json"
_FIELDS = ("admin_id", "admin_secret", "gateway_id", "gateway_secret")


class CredentialsError(Exception):
    """The credentials file cannot be used (``str(exc)`` says which file and why, never a
    secret); nothing was written."""


def load_or_bootstrap_credentials(settings: Settings, data_dir: Path) -> tuple[Credentials, bool]:
    """The admin and gateway credentials: read from ``<data_dir>/credentials.json``, or made in
    the database and written there (mode 0600, created exclusively) on first start.

    Args:
        settings: the service's settings (its database gets the two clients on first start).
        data_dir: the directory holding credentials.json (it must exist).

    Returns:
        (credentials, created): created is True when this call made them.

    Raises:
        CredentialsError: the file is unreadable, not JSON or lacks a field; or it is missing
            while the database already has the clients (restore it, or make new clients with
            the service CLI).
        sqlalchemy.exc.SQLAlchemyError: the database cannot be reached.
    """
    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CredentialsError(f"{path} is unreadable or not JSON") from None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in _FIELDS):
            raise CredentialsError(f"{path} is malformed")
        return Credentials(*(data[k] for k in _FIELDS)), False
    try:
        creds = bootstrap_credentials(settings)
    except ServiceError as exc:
        raise CredentialsError(
            f"cannot create the default credentials ({exc}); the database already has them "
            f"but {path} is missing: restore it or create new clients with the service CLI"
        ) from None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({k: getattr(creds, k) for k in _FIELDS}, f, indent=1)
    return creds, True
