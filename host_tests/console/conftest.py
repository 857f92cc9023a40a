"""Fixtures of the console tests (issue 18): the service app with its console, operator
accounts straight in the database, and a signed-in HTTP client per operator.

The app and its fake clock come from the service tests' fixtures (``make_settings``,
``FakeClock``, ``serve_app``): the console is the same app, same database, same domain code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from ztp.service import Database, ServiceClient, Settings
from ztp.service._console import create_user

from ..service.conftest import (  # noqa: F401  (pg_cluster: the PostgreSQL fixture)
    FakeClock,
    _create_pg_db,
    make_settings,
    pg_cluster,
    running_service,
)

PASSWORD = "correct horse battery"
ICCID = "8944502509186389635"
PSK = bytes(range(16))
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def login(http: TestClient, username: str, password: str = PASSWORD):
    """Sign in through the login form (its CSRF cookie and field); returns the answer."""
    page = http.get("/console/login")
    return http.post("/console/login", data={"username": username, "password": password,
                                              "csrf": csrf_of(page.text)},
                     follow_redirects=False)


@dataclass
class ConsoleApp:
    settings: Settings
    clock: FakeClock
    app: object
    admin: ServiceClient  # the API, with an admin token (to set things up)
    gateway: ServiceClient

    def device_get(self, device_hex: str, identity_hex: str, tag: str = "1"):
        """A device's configuration request, as the gateway forwards it."""
        return self.gateway.request(
            "GET", f"/v1/config/{device_hex}", params={"iccid": identity_hex},
            headers={"X-ZTP-Identity": identity_hex, "X-ZTP-Key-Tag": tag})

    def add_user(self, username: str, role: str, password: str = PASSWORD) -> None:
        db = Database(self.settings.database_url)
        try:
            with db.write() as session:
                create_user(session, _hasher(), username, role, password,
                            self.clock.now_ms)
        finally:
            db.dispose()

    def browser(self, base_url: str = "http://testserver",
                client: tuple[str, int] = ("testclient", 50000)) -> TestClient:
        """A fresh HTTP client with its own cookie jar (one per operator)."""
        return TestClient(self.app, base_url=base_url, client=client)

    def signed_in(self, username: str, role: str | None = None) -> TestClient:
        if role is not None:
            self.add_user(username, role)
        http = self.browser()
        r = login(http, username)
        assert r.status_code == 303, r.text
        return http


def _hasher():
    from ztp.service._keys import SecretHasher

    return SecretHasher(fast=True)


@contextmanager
def _console_on(url: str) -> Iterator[ConsoleApp]:
    with running_service(url) as s:
        yield ConsoleApp(s.settings, s.clock, s.app, s.admin, s.gateway)


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleApp]:
    """The console on SQLite."""
    with _console_on(f"sqlite:///{tmp_path / 'ztp.db'}") as c:
        yield c


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConsoleApp]:
    """The console on SQLite and on PostgreSQL (the label triggers differ)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ztp.db'}"
    else:
        url = _create_pg_db(request.getfixturevalue("pg_cluster"))
    with _console_on(url) as c:
        yield c
