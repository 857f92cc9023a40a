"""`ztp service|login|sims|configs|clients|audit` against a real service on uvicorn (SQLite)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from ztp.cli import main
from ztp.service import Settings, create_app

from .conftest import ICCID, IDENTITY_HEX, _free_port


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    data = tmp_path / "data"
    monkeypatch.setenv("ZTP_DATA_DIR", str(data))
    monkeypatch.setenv("ZTP_SESSION_FILE", str(tmp_path / "session.json"))
    for var in ("ZTP_MASTER_KEY", "ZTP_MASTER_KEY_FILE", "ZTP_DATABASE_URL", "ZTP_TOKEN",
                "ZTP_URL"):
        monkeypatch.delenv(var, raising=False)
    yield {"data": str(data)}


def run(*args: str, input: str | None = None, ok: bool = True) -> str:
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result.output


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    run("service", "init")
    st = Settings.from_env()
    st.fast_hashing = True
    port = _free_port()
    config = uvicorn.Config(create_app(st), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(500):  # wait for the listening socket (not a timing assertion)
        if srv.started:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


def test_init_creates_private_master_key(env: dict[str, str]) -> None:
    run("service", "init")
    key = Path(env["data"]) / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600
    before = key.read_text()
    run("service", "init")  # never replaces an existing key
    assert key.read_text() == before
    run("service", "add-master-key")
    assert key.read_text().startswith(before) and key.read_text().count(":") == 2


def test_migrate_without_master_key_fails_closed(env: dict[str, str]) -> None:
    out = run("service", "migrate", ok=False)
    assert "no master key" in out


def test_full_operator_flow(server: str, tmp_path: Path) -> None:
    secret = run("service", "create-admin").strip().splitlines()[-1]
    run("login", "--url", server, "--client-id", "admin", input=secret + "\n")
    assert (tmp_path / "session.json").stat().st_mode & 0o777 == 0o600
    run("login", "--url", server, "--client-id", "admin", "--secret", "wrong", ok=False)

    keyfile = tmp_path / "keys.csv"
    keyfile.write_text(f"ICCID,PSK\n{ICCID},{'00' * 16}\n89445025091863896 43,{'11' * 16}\n")
    out = run("sims", "import", str(keyfile))
    assert "SIMs created: 2" in out
    sims = json.loads(run("sims", "list", "--json"))
    assert [s["identity"] for s in sims][0] == IDENTITY_HEX
    assert "psk" not in json.dumps(sims).replace('"kind": "psk"', "")

    run("configs", "set", ICCID, "default", '{"a":1}', "--require-json")
    run("configs", "set", ICCID, "default", "not json", ok=False)
    run("configs", "set", ICCID, "default", '{"a":2}')
    assert run("configs", "get", ICCID).strip() == '{"a":2}'
    out = run("configs", "rollback", ICCID, "default", "1")
    assert "version 3" in out
    hist = json.loads(run("configs", "history", ICCID, "default", "--json"))
    assert [v["version"] for v in hist] == [3, 2, 1] and hist[0]["body"] == '{"a":1}'
    run("configs", "history", ICCID, "default")  # the table renders

    exported = tmp_path / "configs.json"
    run("configs", "export", str(exported))
    rows = json.loads(exported.read_text())["configs"]
    assert rows[0]["body"] == '{"a":1}'
    run("configs", "import", str(exported))
    assert json.loads(run("configs", "get", ICCID, "--json"))["version"] == 4

    gw_secret = run("clients", "create", "gw-1", "--scope", "gateway").strip()
    assert len(gw_secret) > 20
    run("sims", "suspend", ICCID)
    assert json.loads(run("sims", "list", "--state", "suspended", "--json"))[0]["iccid"] == ICCID
    run("sims", "remove", ICCID, "--yes")
    run("sims", "show", ICCID, ok=False)

    events = json.loads(run("audit", "--json", "--limit", "1000"))
    actions = [e["action"] for e in events]
    for expected in ("sim.import", "config.set", "config.rollback", "config.import",
                     "client.create", "sim.update", "sim.delete"):
        assert expected in actions
    run("audit")  # the table renders


def test_sims_add(server: str, tmp_path: Path) -> None:
    from ztp.service import ServiceClient

    from .test_operator_api import BAD_LUHN, ICCID2

    secret = run("service", "create-admin").strip().splitlines()[-1]
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)
    psk = bytes(range(16))
    out = run("sims", "add", ICCID, "--psk", psk.hex(), "--tag", "7", "--label", "site=lab",
              "--label", "batch=b1")
    assert out.strip() == f"registered {ICCID} (identity {IDENTITY_HEX})"
    shown = json.loads(run("sims", "show", ICCID))
    assert shown["iccid"] == ICCID and shown["labels"] == {"site": "lab", "batch": "b1"}
    assert psk.hex() not in json.dumps(shown)
    # the PSK was stored as given, under its tag: what a gateway is handed
    gw_secret = run("clients", "create", "gw-cli", "--scope", "gateway").strip()
    with ServiceClient(server) as gw:
        gw.login("gw-cli", gw_secret)
        keys = gw.gateway_psks(IDENTITY_HEX)
    assert [(k["tag"], k["psk"]) for k in keys["keys"]] == [("7", psk.hex())]

    # a generated PSK is printed once, and only then
    out = json.loads(run("sims", "add", ICCID2, "--generate-psk", "--json"))
    assert out["iccid"] == ICCID2 and len(bytes.fromhex(out["psk"])) == 16
    assert out["psk"] not in run("sims", "show", ICCID2)

    # refusals: the same ICCID twice, a wrong Luhn digit without --force, a PSK not hex
    assert "409" in run("sims", "add", ICCID, ok=False)
    assert "Luhn" in run("sims", "add", BAD_LUHN, ok=False)
    out = run("sims", "add", BAD_LUHN, "--force", "--json")
    assert json.loads(out)["iccid"] == BAD_LUHN
    assert "--psk must be hex" in run("sims", "add", ICCID, "--psk", "zz", ok=False)
    actions = [e["action"] for e in json.loads(run("audit", "--json", "--limit", "100"))]
    assert actions.count("sim.create") == 3
