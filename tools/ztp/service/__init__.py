"""Configuration service: the operator's API for SIMs, keys and per-device configurations,
and the gateway-facing API (docs/INTERFACES.md, docs/service.md).

    app = create_app(Settings.from_env(data_dir))     # ASGI; `ztp service serve` runs it
    client = ServiceClient("http://127.0.0.1:8080"); client.login(client_id, secret)
"""

from ._app import create_app
from ._bulk import import_key_file
from ._client import (
    Credentials,
    ServiceClient,
    ServiceClientError,
    bootstrap_credentials,
    create_admin,
)
from ._credentials import CREDENTIALS_FILE, CredentialsError, load_or_bootstrap_credentials
from ._db import Database, migrate
from ._errors import ServiceError
from ._keys import KeyIntegrityError, MasterKeyError, MasterKeyring
from ._settings import Settings, default_data_dir

__all__ = [
    "CREDENTIALS_FILE",
    "Credentials",
    "CredentialsError",
    "Database",
    "KeyIntegrityError",
    "MasterKeyError",
    "MasterKeyring",
    "ServiceClient",
    "ServiceClientError",
    "ServiceError",
    "Settings",
    "bootstrap_credentials",
    "create_admin",
    "create_app",
    "default_data_dir",
    "import_key_file",
    "load_or_bootstrap_credentials",
    "migrate",
]
