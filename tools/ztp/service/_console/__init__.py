"""The operator console at ``/console`` (issue 18, docs/console.md): server-rendered pages on
the service's own domain code, operator accounts with roles mapped to the API's scopes,
server-side sessions, CSRF tokens and a strict Content-Security-Policy.

    app.routes.append(Mount("/console", routes=console_routes(state)))   # create_app does it
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from .._http import AppState
from . import _fleet_views, _views  # noqa: F401  (register the pages)
from ._accounts import (
    ROLES,
    create_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
)
from ._pages import Console

__all__ = [
    "ROLES",
    "console_routes",
    "create_user",
    "disable_user",
    "enable_user",
    "list_users",
    "set_password",
]


def console_routes(state: AppState) -> list[BaseRoute]:
    """The console's routes, to be mounted at ``/console``."""
    return Console(state).routes()
