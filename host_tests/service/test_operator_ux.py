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


def test_login_with_empty_stdin_is_refused_locally(server: str) -> None:  # noqa: F811
    run("service", "create-admin")
    out = run("login", "--url", server, "--client-id", "admin", input="", ok=False)
    assert "no client secret: stdin was empty" in out and "401" not in out
    assert "Traceback" not in out


def test_logout_revokes_and_forgets(server: str, tmp_path: Path) -> None:  # noqa: F811
    _login(server)
    token = json.loads((tmp_path / "session.json").read_text())["token"]
    assert "logged out (token revoked)" in run("logout")
    assert not (tmp_path / "session.json").exists()
    assert "not logged in" in run("sims", "list", ok=False)
    from ztp.service import ServiceClient, ServiceClientError

    with ServiceClient(server, token) as c, pytest.raises(ServiceClientError) as err:
        c.list_sims()
    assert err.value.status == 401
    assert "logged out" in run("logout")  # twice: nothing to revoke, still fine


def test_expired_session_renews_from_credentials_file(server: str, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    secret = run("service", "create-admin").strip().splitlines()[-1]
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps({"admin_id": "admin", "admin_secret": secret,
                                 "gateway_id": "g", "gateway_secret": "x"}))
    out = run("login", "--url", server, "--credentials", str(creds))
    assert "logged in" in out and "valid 3600 s" in out
    session_path = tmp_path / "session.json"
    session = json.loads(session_path.read_text())
    assert secret not in session_path.read_text()  # the path, never the secret
    session["expires_ms"] = 0  # expired
    session_path.write_text(json.dumps(session))
    run("sims", "list")  # renewed by itself
    renewed = json.loads(session_path.read_text())
    assert renewed["token"] != session["token"] and renewed["expires_ms"] > 0
    # a session from a typed secret cannot renew: it says so
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)
    session = json.loads(session_path.read_text())
    session["expires_ms"] = 0
    session_path.write_text(json.dumps(session))
    assert "expired: run `ztp login` again" in run("sims", "list", ok=False)


@pytest.mark.parametrize("which", ["--service-listen", "--gateway-listen", "--metrics"])
def test_serve_on_a_taken_port_is_one_line_and_writes_nothing(tmp_path: Path, which: str,
                                                              monkeypatch) -> None:
    import socket

    from click.testing import CliRunner
    from ztp.cli import main

    for var in ("ZTP_MASTER_KEY", "ZTP_MASTER_KEY_FILE", "ZTP_DATABASE_URL", "ZTP_SMSC_URL"):
        monkeypatch.delenv(var, raising=False)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    args = {"--service-listen": "127.0.0.1:0", "--gateway-listen": "127.0.0.1:0"}
    args[which] = str(port)  # a bare port is accepted too
    data = tmp_path / "data"
    try:
        got = CliRunner().invoke(main, ["serve", "--data-dir", str(data),
                                        *[x for kv in args.items() for x in kv]])
    finally:
        taken.close()
    assert got.exit_code == 1
    assert got.output.strip().splitlines() == [
        f"Error: {which.replace('--metrics', '--metrics-listen')}: cannot listen on "
        f"127.0.0.1:{port}: Address already in use"]
    assert not (data / "credentials.json").exists()


def test_tables_keep_the_key_columns_whole_at_80_columns(server: str, tmp_path: Path,  # noqa: F811
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _login(server)
    long_iccid = "89445025091863896432"  # 20 digits
    keyfile = tmp_path / "keys.csv"
    keyfile.write_text(f"iccid,psk,tag,kic,kid\n{ICCID},{'00' * 16},1,{KIC},{KID}\n"
                       f"{long_iccid},{'11' * 16},1,,\n")
    run("sims", "import", str(keyfile), "--force")
    run("configs", "set", ICCID, "default", '{"a":1}', "--comment", "first")
    out = run("sims", "list")
    assert ICCID in out and long_iccid in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    out = run("audit")
    for word in (ICCID, long_iccid, "sim.create", "config.set", "token.issue", "detail",
                 "kind=psk"):
        assert word in out, word
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    out = run("configs", "history", ICCID)  # time in UTC like the audit, not epoch ms
    assert "time (UTC)" in out and "20" in out and "at (ms)" not in out
    wide = run("audit", "--wide")
    assert max(len(line) for line in wide.splitlines()) > 80  # one line per event


def test_service_serve_listen_convention_and_taken_port(env: dict[str, str]) -> None:  # noqa: F811
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        for args in (["--listen", str(port)], ["--listen", f"127.0.0.1:{port}"],
                     ["--port", str(port)]):  # --host/--port: the old spelling, kept
            out = run("service", "serve", *args, ok=False)
            assert out.strip() == (f"Error: --listen: cannot listen on 127.0.0.1:{port}: "
                                   "Address already in use"), out
    finally:
        taken.close()
    assert not (Path(env["data"]) / "master.key").exists()  # nothing written before the bind
    assert "expected HOST:PORT or PORT" in run("service", "serve", "--listen", "x:y", ok=False)
    help_text = run("service", "serve", "--help")
    for word in ("--listen", "--smsc-url", "ZTP_SMSC_URL", "--token-ttl", "--require-json"):
        assert word in help_text
    help_text = run("serve", "--help")
    for word in ("--metrics-listen", "--smsc-url", "--token-ttl", "--require-json"):
        assert word in help_text


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ztp.service import Settings

    monkeypatch.setenv("ZTP_MASTER_KEY_FILE", str(tmp_path / "mk"))
    monkeypatch.setenv("ZTP_TOKEN_TTL_S", "600")
    monkeypatch.setenv("ZTP_REQUIRE_JSON", "true")
    monkeypatch.setenv("ZTP_SMSC_URL", "http://127.0.0.1:9")
    st = Settings.from_env(tmp_path, create_key=True)
    assert (st.token_ttl_s, st.require_json, st.sms_centre) == (600, True, "http://127.0.0.1:9")
    monkeypatch.setenv("ZTP_TOKEN_TTL_S", "soon")
    with pytest.raises(ValueError, match="ZTP_TOKEN_TTL_S must be an integer 60..2592000"):
        Settings.from_env(tmp_path)


def test_docs_index_and_metrics(svc) -> None:
    from .conftest import IDENTITY_HEX, PSK

    http = svc.http
    page = http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    doc = http.get("/openapi.json").json()
    for path, ops in doc["paths"].items():  # every operation is on the page
        assert f"<code>{path}</code>" in page.text.replace("&#x27;", "'")
        for op in ops.values():
            assert f'id="{op["operationId"]}"' in page.text
    assert "<script" not in page.text and "http://" not in page.text  # nothing from a CDN
    index = http.get("/")
    assert index.status_code == 200 and 'href="/docs"' in index.text

    svc.admin.create_sim(ICCID, psk=PSK)
    svc.admin.set_config(ICCID, "default", '{"a":1}')
    assert svc.device_get().status_code == 200
    assert svc.device_get(device_hex="0011223344").status_code == 200
    assert svc.gateway.request("GET", f"/v1/gateway/psks/{IDENTITY_HEX}").status_code == 200
    metrics = http.get("/metrics")  # no token: no identities in it
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith(
        "text/plain")
    text = metrics.text
    assert 'ztp_service_requests_total{operation="device_config",status="200"} 2.0' in text
    assert 'ztp_service_config_deliveries_total{result="delivered"} 2.0' in text
    assert 'ztp_service_psk_lookups_total{result="found"} 1.0' in text
    assert 'ztp_service_request_seconds_bucket{le="0.001",operation="sims_create"}' in text
    assert ICCID not in text and IDENTITY_HEX not in text


def test_logout_leaves_an_environment_token_alone(server: str, tmp_path: Path,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    secret = run("service", "create-admin").strip().splitlines()[-1]
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)
    env_token = json.loads((tmp_path / "session.json").read_text())["token"]
    run("login", "--url", server, "--client-id", "admin", "--secret", secret)  # a second one
    monkeypatch.setenv("ZTP_TOKEN", env_token)
    monkeypatch.setenv("ZTP_URL", server)
    assert "token revoked" in run("logout")
    assert run("sims", "list", "--json").strip() == "[]"  # $ZTP_TOKEN still works


def test_serve_with_a_broken_credentials_file_is_one_line(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner
    from ztp.cli import main

    for var in ("ZTP_MASTER_KEY", "ZTP_MASTER_KEY_FILE", "ZTP_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "credentials.json").write_text("{not json")
    got = CliRunner().invoke(main, ["serve", "--data-dir", str(data), "--service-listen", "0",
                                    "--gateway-listen", "0"])
    assert got.exit_code == 1
    assert got.output.strip() == f"Error: {data / 'credentials.json'} is unreadable or not JSON"


def test_unreachable_database_is_one_line_without_password(
        env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from .conftest import _free_port

    monkeypatch.setenv("ZTP_DATABASE_URL",
                       f"postgresql+psycopg://ops:s3cret@127.0.0.1:{_free_port()}/ztp")
    out = run("service", "serve", "--listen", "0", ok=False)
    assert out.startswith("Error: database 127.0.0.1:") and len(out.strip().splitlines()) == 1
    assert "s3cret" not in out and "ops" not in out
