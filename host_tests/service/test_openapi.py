"""/openapi.json matches the routes, and a bounded schema-driven fuzz run (Schemathesis)
against it: no 500 (nor an undocumented 5xx), declared status codes and content types,
responses match their schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route
from starlette.testclient import TestClient
from ztp.service import ServiceClient, bootstrap_credentials, create_app

from .conftest import ICCID, PSK, FakeClock, make_settings


@schemathesis.check
def no_internal_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 500, and no 5xx the operation does not document (a documented 503 is an answer)."""
    status = response.status_code
    documented = case.operation.definition.raw.get("responses", {})
    if status == 500 or (status >= 500 and str(status) not in documented):
        raise AssertionError(f"server error {status}: {response.text[:200]}")
    return None


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'z.db'}", FakeClock()))
    with TestClient(app) as http:
        doc = http.get("/openapi.json").json()
    routes = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
              for m in r.app.methods}
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    # the gateway contract of docs/INTERFACES.md is there, with the gateway scope
    for path, method in [("/v1/gateway/psks/{identity_hex}", "get"),
                         ("/v1/gateway/psk-changes", "get"), ("/v1/gateway/events", "post"),
                         ("/v1/config/{device_id_hex}", "get"),
                         ("/v1/data/{device_id_hex}", "post")]:
        assert doc["paths"][path][method]["security"] == [{"bearer": ["gateway"]}]
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def fuzz_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    st = make_settings(f"sqlite:///{tmp / 'z.db'}", FakeClock())
    creds = bootstrap_credentials(st)
    app = create_app(st)
    with TestClient(app) as http:
        admin = ServiceClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        admin.create_sim(ICCID, psk=PSK)
        admin.set_config(ICCID, "default", "{}")
        gateway = ServiceClient(http=http)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        yield {"app": app, "admin": admin.token, "gateway": gateway.token}


def test_api_conforms_to_openapi(fuzz_env: dict[str, object]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env["app"])
    checks = [no_internal_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    statuses: dict[int, int] = {}
    for operation in operations:
        gateway_op = operation.path.startswith(("/v1/gateway", "/v1/config", "/v1/data"))
        auth = f"Bearer {fuzz_env['gateway' if gateway_op else 'admin']}"
        _fuzz(operation, auth, checks, statuses)
    # the run reached the handlers: successes and refusals both happened
    assert sum(n for code, n in statuses.items() if code < 300) > 20, statuses
    assert sum(n for code, n in statuses.items() if 400 <= code < 500) > 20, statuses
    print("status counts:", dict(sorted(statuses.items())))


def _fuzz(operation: Any, auth: str, checks: list[Any], statuses: dict[int, int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=12, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        headers = dict(case.headers or {})
        headers["Authorization"] = auth
        response = case.call_and_validate(headers=headers, checks=checks)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    run()
