"""Every route of the app's route table refuses a request without a token (401) and one whose
token lacks the route's scope (403), before it looks at anything else. SQLite only: the
checks run before any query that differs between the databases."""

from __future__ import annotations

import re

import pytest
from ztp.service import ServiceClient
from ztp.service._http import ROUTES

from .conftest import ICCID, IDENTITY_HEX, Svc

PATH_VALUES = {"iccid": ICCID, "kind": "psk", "tag": "1", "device_id": "default",
               "device_id_hex": "00112233", "identity_hex": IDENTITY_HEX, "batch": "latest",
               "client_id": "someone", "label": "fleet=pumps", "rollout_id": "1"}
# Scopes a token may hold (as granted) that do NOT satisfy a route's scope.
INSUFFICIENT = {"read": ("gateway",), "write": ("read", "gateway"),
                "admin": ("read", "write", "gateway"), "gateway": ("read", "write", "admin")}
OPEN_ROUTES = {("GET", "/healthz"), ("POST", "/v1/auth/token")}  # no token by design


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def _protected() -> list[tuple[str, str, str]]:
    from ztp.service import _app  # noqa: F401  (registers every route)

    return [(r.method, r.path, r.scope) for r in ROUTES if r.scope is not None]


def test_route_table_is_covered() -> None:
    from ztp.service import _app  # noqa: F401

    unprotected = {(r.method, r.path) for r in ROUTES if r.scope is None}
    assert unprotected == OPEN_ROUTES
    routes = {(m, p) for m, p, _ in _protected()}
    assert ("POST", "/v1/rotations/run") in routes
    assert ("POST", "/v1/sims/{iccid}/rotation/retry") in routes
    assert {s for _, _, s in _protected()} == set(INSUFFICIENT)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_every_route_needs_a_token_with_its_scope(svc: Svc) -> None:
    tokens = {}
    for scope in ("read", "write", "admin", "gateway"):
        name = f"probe-{scope}"
        secret = svc.admin.create_client(name, [scope])
        tokens[scope] = ServiceClient(http=svc.http).login(name, secret)
    svc.admin.create_sim(ICCID)  # so that a handler that ran would find something
    seen = 0
    for method, path, scope in _protected():
        url = _url(path)
        for headers in ({}, {"Authorization": "Bearer ztp_not_a_token"},
                        {"Authorization": "Basic YTpi"}):
            r = svc.http.request(method, url, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer")
        for weak in INSUFFICIENT[scope]:
            r = svc.http.request(method, url, headers={
                "Authorization": f"Bearer {tokens[weak]}", "X-ZTP-Identity": IDENTITY_HEX,
                "X-ZTP-Key-Tag": "1", "X-ZTP-Gateway": "gw"}, json={})
            assert r.status_code == 403, (method, path, weak, r.status_code, r.text)
            assert r.json()["error"] == "insufficient_scope"
        seen += 1
    assert seen == len(_protected()) >= 30
    # nothing was changed by any refused request
    assert [s["iccid"] for s in svc.admin.list_sims()] == [ICCID]
    assert svc.admin.list_configs(ICCID) == []
    # the probe is not vacuous: the same requests with a sufficient token get past the check
    for method, path, scope in _protected():
        r = svc.http.request(method, _url(path), headers={
            "Authorization": f"Bearer {tokens[scope]}", "X-ZTP-Identity": IDENTITY_HEX,
            "X-ZTP-Key-Tag": "1", "X-ZTP-Gateway": "gw"}, json={})
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text)
