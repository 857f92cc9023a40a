"""Issue 16, "what a new user trips over": the operator CLI and service answers a new user
meets first (rotation without an SMS centre, a taken port, login, re-import, tables)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ICCID
from .test_cli import env, run, server  # noqa: F401  (fixtures)

KIC = "11" * 16
KID = "22" * 16


def _login(server: str) -> None:  # noqa: F811
    secret = run("service", "create-admin").strip().splitlines()[-1]
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)


def _import_ota_sim(tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.csv"
    keyfile.write_text(f"iccid,psk,tag,kic,kid\n{ICCID},{'00' * 16},1,{KIC},{KID}\n")
    run("sims", "import", str(keyfile))


def test_rotate_without_sms_centre_changes_nothing(server: str, tmp_path: Path,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _login(server)
    _import_ota_sim(tmp_path)
    before = json.loads(run("audit", "--json"))
    out = run("rotate", ICCID, ok=False)
    assert "503 sms_centre_unavailable" in out and "nothing was changed" in out
    assert json.loads(run("audit", "--json")) == before  # no key.add, no rotation.start
    assert "503 sms_centre_unavailable" in run("rotate", ICCID, ok=False)  # not 409 now
    # --no-send queues, and says so
    out = run("rotate", ICCID, "--no-send")
    assert "1 rotation(s) started" in out and "queued: no SMS centre" in out
    actions = [e["action"] for e in json.loads(run("audit", "--json"))]
    assert "rotation.start" in actions
