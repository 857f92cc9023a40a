"""`ztp fleets|devices|rollouts` against a real service on uvicorn (SQLite), with a device
speaking through the gateway API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from ztp.service import ServiceClient

from .conftest import ICCID, IDENTITY_HEX
from .fleet_helpers import digest, report
from .test_cli import env, run, server  # noqa: F401  (fixtures)

OLD = '{"configuration":{"n":1}}'
NEW = '{"configuration":{"n":2}}'


def _device(server: str, secret: str) -> httpx.Client:  # noqa: F811
    gw = ServiceClient(server)
    gw.login("gw-cli", secret)
    return httpx.Client(base_url=server, headers={
        "Authorization": f"Bearer {gw.token}", "X-ZTP-Identity": IDENTITY_HEX})


def test_fleets_devices_rollouts(server: str, tmp_path: Path) -> None:  # noqa: F811
    secret = run("service", "create-admin").strip().splitlines()[-1]
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)
    run("sims", "add", ICCID, "--psk", "00" * 16, "--label", "fleet=pumps")
    run("fleets", "set", "fleet=pumps", OLD, ok=False)  # a new label needs its priority
    out = run("fleets", "set", "fleet=pumps", OLD, "--priority", "10")
    assert out.strip() == f"fleet=pumps: version 1, priority 10, {digest(OLD)}"
    assert "fleet=pumps" in run("fleets", "list")
    gw_secret = run("clients", "create", "gw-cli", "--scope", "gateway").strip()
    with _device(server, gw_secret) as dev:
        q = {"iccid": IDENTITY_HEX}
        assert dev.get("/v1/config/0a0b", params=q).content == OLD.encode()
        assert json.loads(run("devices", "list", "--pending", "--json"))[0]["iccid"] == ICCID
        dev.post("/v1/data/0a0b", params=q, content=report("applied", OLD, version="v1"))
        dev.post("/v1/data/0a0b", params=q, content=report("confirmed", OLD, version="v1"))
        shown = run("devices", "show", ICCID, "0a0b")
        assert "in_sync" in shown and "confirmed (code 0)" in shown and "version v1" in shown
        out = run("rollouts", "start", "fleet=pumps", NEW, "--device", f"{ICCID}/0a0b",
                  "--stages", "100", "--max-failures", "0")
        assert "rollout 1 of fleet=pumps: running, stage 1/2 (listed devices)" in out
        assert dev.get("/v1/config/0a0b", params=q).content == NEW.encode()
        dev.post("/v1/data/0a0b", params=q, content=json.dumps(
            {"v": 1, "digest": digest(OLD), "outcome": "rejected", "code": 42,
             "rejected": digest(NEW)}).encode())
    assert "stopped" in run("rollouts", "status", "1")
    failed = json.loads(run("devices", "list", "--failed", "--json"))
    assert [(d["reported"]["outcome"], d["reported"]["code"]) for d in failed] == [
        ("rejected", 42)]
    assert "42" in run("devices", "list", "--failed")
    run("rollouts", "pause", "1", ok=False)  # stopped: only abort
    assert "aborted" in run("rollouts", "abort", "1")
    assert json.loads(run("devices", "show", ICCID, "0a0b", "--json"))["state"] == "in_sync"
    assert "aborted" in run("rollouts", "status")
    events = json.loads(run("audit", "--json", "--limit", "1000"))
    actions = {e["action"] for e in events}
    assert {"fleet.set", "device.report", "rollout.start", "rollout.stop",
            "rollout.abort"} <= actions
