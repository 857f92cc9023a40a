"""Schemathesis over ``/openapi.json`` against the service on uvicorn (issue 13 item 6): every
phase (examples, coverage, fuzzing, stateful), the checks named below, a fixed seed and a
bounded number of examples per operation. It must report nothing: the document says exactly
what the service accepts (a schema-valid request is not refused, a schema-violating one is),
undeclared methods get 405 with an ``Allow`` header listing the path's methods, and answers
match their documented statuses, content types and schemas.

Two runs, as the API has two kinds of caller: operator operations with an admin token, gateway
operations (``/v1/gateway``, ``/v1/config``, ``/v1/data``) with a gateway token.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.testclient import TestClient
from ztp.service import ServiceClient, bootstrap_credentials, create_app
from ztp.service._throttle import LoginLimits

from .conftest import ICCID, PSK, FakeClock, _free_port, make_settings

SEED = 13
MAX_EXAMPLES = 5  # per operation and phase
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)
GATEWAY_PATHS = "^/v1/(gateway|config|data)/"


class _SmsCentre:
    """Accepts every rotation packet and answers no PoR (POST /v1/rotations/run works)."""

    def deliver(self, iccid: str, tpdu: bytes) -> None:
        del iccid, tpdu


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    st = make_settings(f"sqlite:///{tmp / 'z.db'}", FakeClock(), sms_centre=_SmsCentre(),
                       login_limits=LoginLimits(burst=10**6, per_minute=10**6))
    creds = bootstrap_credentials(st)
    app = create_app(st)
    with TestClient(app) as http:
        admin = ServiceClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        admin.create_sim(ICCID, psk=PSK)
        admin.set_config(ICCID, "default", "{}")
        gateway = ServiceClient(http=http)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        tokens = {"admin": admin.token, "gateway": gateway.token}
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):  # wait for the listening socket (not a timing assertion)
        if server.started:
            break
        time.sleep(0.01)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "dir": str(tmp), **tokens}
    finally:
        server.should_exit = True
        thread.join(10)


def schemathesis(served: dict[str, str], token: str, *select: str) -> None:
    args = [
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
        "run", f"{served['url']}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--workers", "1",
        "--no-color",
        "--suppress-health-check", "all",
        "-H", f"Authorization: Bearer {token}",
        *select,
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          cwd=served["dir"], env=env)
    assert proc.returncode == 0, proc.stdout[-12_000:] + proc.stderr[-2000:]
    assert " 0 failures" not in proc.stdout or "passed" in proc.stdout  # a real summary


def test_operator_api(served: dict[str, str]) -> None:
    schemathesis(served, served["admin"], "--exclude-path-regex", GATEWAY_PATHS)


def test_gateway_api(served: dict[str, str]) -> None:
    schemathesis(served, served["gateway"], "--include-path-regex", GATEWAY_PATHS)
