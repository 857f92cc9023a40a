"""The console in a real browser (issue 18): Debian's chromium, headless, driven by
Playwright, against the service on uvicorn on loopback (the app ``ztp serve`` runs). An
operator signs in, searches, edits a configuration past the 254-byte limit (refused) and
within it (saved, audited, delivered to the device), rolls back, imports a key file with a
bad row, signs out; forged POSTs without the CSRF token are refused, and a viewer sees no
buttons and cannot change anything."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ztp.service import Database, ServiceClient, Settings, bootstrap_credentials, create_app
from ztp.service._console import create_user
from ztp.service._keys import MasterKeyring, SecretHasher

from .. import peers
from ..service.conftest import serve_app
from .browser import chromium, chromium_path
from .conftest import PASSWORD, PSK

ICCID = "8944502509186389635"
IDENTITY_HEX = "984405529081369836f5"


@dataclass
class Served:
    url: str
    admin: ServiceClient
    gateway: ServiceClient


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if importlib.util.find_spec("playwright") is None:
        peers.missing("playwright (pip) not installed")
    if chromium_path() is None:
        peers.missing("chromium not installed")
    with chromium() as b:
        yield b


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    st = Settings(database_url=f"sqlite:///{tmp_path / 'ztp.db'}",
                  master_key=MasterKeyring.generate(), fast_hashing=True)
    creds = bootstrap_credentials(st)
    db = Database(st.database_url)
    with db.write() as session:
        for name, role in (("olga", "operator"), ("vera", "viewer")):
            create_user(session, SecretHasher(fast=True), name, role, PASSWORD, st.clock_ms())
    db.dispose()
    app = create_app(st)
    with serve_app(app) as url:
        admin = ServiceClient(url)
        admin.login(creds.admin_id, creds.admin_secret)
        gateway = ServiceClient(url)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        admin.create_sim(ICCID, psk=PSK, labels={"fleet": "north"})
        admin.create_sim("8944502509186389643", psk=bytes(16), labels={"fleet": "south"})
        try:
            yield Served(url, admin, gateway)
        finally:
            admin.close()
            gateway.close()


def _sign_in(page: Any, url: str, username: str) -> None:
    page.goto(url + "/console")
    assert page.url.endswith("/console/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/console/sims$"))


def test_operator_in_the_browser(browser: Any, served: Served, tmp_path: Path) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _sign_in(page, served.url, "olga")
    # search by ICCID prefix, then by label
    page.fill("input[name=q]", "89445025091863896")
    page.click("#sim-search button")
    rows = page.locator("#sims tbody tr")
    assert rows.count() == 2
    page.fill("input[name=q]", "")
    page.fill("input[name=label]", "fleet=south")
    page.click("#sim-search button")
    assert page.locator("#sims tbody tr").count() == 1
    assert "8944502509186389643" in page.inner_text("#sims")
    page.goto(served.url + f"/console/sims/{ICCID}")
    assert page.inner_text("#sim-state") == "active"
    page.fill("#device-field", "00112233")
    page.click("#open-editor")
    page.wait_for_url(re.compile(r".*/configs/00112233$"))
    # past the limit: the counter says so as one types, and the server refuses
    too_long = '{"notes":"' + "ü" * 122 + '"}'  # 122 two-byte characters: 256 bytes
    page.fill("#body", too_long)
    counter = page.locator("#byte-counter")
    assert counter.inner_text() == "256 / 254 bytes (2 too many)"
    assert "over" in (counter.get_attribute("class") or "")
    page.click("#save")
    assert "256 bytes of UTF-8; at most 254 allowed" in page.inner_text("#error")
    assert page.input_value("#body") == too_long  # the text is kept
    # within it: saved, audited
    page.fill("#body", '{"apn":"iot.example","interval_s":60}')
    assert counter.inner_text() == "37 / 254 bytes"
    page.click("#save")
    assert "Configuration saved." in page.inner_text("main")
    assert page.inner_text("#current-version") == "1"
    page.fill("#body", '{"apn":"iot.example","interval_s":300}')
    page.click("#show-diff")
    assert '+ "interval_s": 300' in page.inner_text("#diff")
    page.click("#save")
    assert page.inner_text("#current-version") == "2"
    # the device gets it at its next request
    r = served.gateway.request("GET", "/v1/config/00112233", params={"iccid": IDENTITY_HEX},
                               headers={"X-ZTP-Identity": IDENTITY_HEX, "X-ZTP-Key-Tag": "1"})
    assert r.content == b'{"apn":"iot.example","interval_s":300}'
    # rollback to version 1
    page.click("#rollback-1")
    assert "Rolled back" in page.inner_text("main")
    assert page.inner_text("#current-version") == "3"
    assert served.admin.get_config(ICCID, "00112233")["body"] == \
        '{"apn":"iot.example","interval_s":60}'
    # the audit names the operator
    page.goto(served.url + f"/console/audit?iccid={ICCID}&actor=olga")
    audit = page.inner_text("#audit")
    assert "config.rollback" in audit and "config.set" in audit
    # import a key file with a bad row: nothing imported, the line named
    key_file = tmp_path / "keys.csv"
    key_file.write_text(f"iccid,psk\n8944502509186389650,{PSK.hex()}\n"
                        f"8944502509186389651,{PSK.hex()}\n")
    page.goto(served.url + "/console/import")
    page.set_input_files("#import-file", str(key_file))
    page.click("#import-submit")
    assert "Nothing imported: 1 bad row(s)" in page.inner_text("#import-report")
    assert re.search(r"^3\s+bad iccid", page.inner_text("#bad-rows"), re.M)
    key_file.write_text(f"iccid,psk\n8944502509186389650,{PSK.hex()}\n")
    page.set_input_files("#import-file", str(key_file))
    page.click("#import-submit")
    assert "1 SIM(s) registered" in page.inner_text("#import-result")
    # sign out: the session is gone
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/console/login\?ok=signed_out$"))
    page.goto(served.url + "/console/sims")
    assert page.url.endswith("/console/login")
    # no CSP violation, no script error (the refused save's 400 is logged as a failed load)
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []
    assert len(errors) == 2  # the refused save and the import with a bad row
    context.close()


def test_csrf_refused_in_the_browser(browser: Any, served: Served) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, served.url, "olga")
    target = served.url + f"/console/sims/{ICCID}/state"
    # the browser's own cookies go along (same origin), but no or a wrong token: refused
    for form in ({"state": "suspended"}, {"state": "suspended", "csrf": "0" * 43}):
        r = page.request.post(target, form=form)
        assert r.status == 403 and "CSRF" in r.text()
    assert served.admin.get_sim(ICCID)["state"] == "active"
    # with the page's token the same POST is accepted
    page.goto(served.url + f"/console/sims/{ICCID}")
    page.click("#suspend")
    assert page.inner_text("#sim-state") == "suspended"
    context.close()


def test_rollout_started_and_aborted_in_the_browser(browser: Any, served: Served) -> None:
    old, new = '{"interval_s":300}', '{"interval_s":60}'
    served.admin.set_label_config("fleet=north", old, 10)
    headers = {"X-ZTP-Identity": IDENTITY_HEX, "X-ZTP-Key-Tag": "1"}

    def device_config() -> bytes:
        return served.gateway.request("GET", "/v1/config/00112233",
                                      params={"iccid": IDENTITY_HEX}, headers=headers).content

    assert device_config() == old.encode()  # the device is seen, with the label's body
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _sign_in(page, served.url, "olga")
    page.click("header >> text=Rollouts")
    page.fill("input[name=label]", "fleet=north")
    page.fill("#body", new)
    assert page.inner_text("#byte-counter") == "17 / 254 bytes"
    page.fill("input[name=stages]", "50")
    page.fill("#devices", f"{ICCID}/00112233")
    page.fill("input[name=max_failures]", "0")
    page.click("#rollout-start")
    page.wait_for_url(re.compile(r".*/console/rollouts/\d+\?ok=rollout_started$"))
    rid = int(re.search(r"/rollouts/(\d+)", page.url).group(1))
    assert page.inner_text("#rollout-state") == "running"
    assert "1 of 3 (0 %" in page.inner_text("#status")
    assert device_config() == new.encode()  # listed: in the first stage
    # abort asks first, saying it rolls back; only the confirmation changes anything
    page.click("#abort")
    assert "roll" in page.inner_text("#confirm")
    assert served.admin.rollout(rid)["state"] == "running"
    page.click("#confirm-abort")
    page.wait_for_url(re.compile(r".*\?ok=rollout_abort$"))
    assert page.inner_text("#rollout-state") == "aborted"
    assert page.locator("#abort").count() == 0
    assert served.admin.rollout(rid)["state"] == "aborted"
    assert device_config() == old.encode()  # rolled back
    assert served.admin.audit(action="rollout.abort")[0]["actor"] == "olga"
    assert errors == []
    context.close()


def test_viewer_in_the_browser(browser: Any, served: Served) -> None:
    served.admin.set_config(ICCID, "default", '{"a":1}')
    served.admin.set_config(ICCID, "default", '{"a":2}')
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, served.url, "vera")
    for path in (f"/console/sims/{ICCID}", f"/console/sims/{ICCID}/configs/default",
                 "/console/import", "/console/rotations"):
        page.goto(served.url + path)
        labels = [b.inner_text() for b in page.locator("main button").all()]
        assert set(labels) <= {"View configuration", "Filter", "Search"}, (path, labels)
    page.goto(served.url + f"/console/sims/{ICCID}/configs/default")
    assert page.locator("#body").get_attribute("readonly") is not None
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    r = page.request.post(served.url + f"/console/sims/{ICCID}/configs/default/rollback",
                          form={"csrf": token, "version": "1"})
    assert r.status == 403 and "viewer" in r.text()
    assert served.admin.get_config(ICCID, "default")["version"] == 2
    context.close()


def test_ztp_serve_prints_the_console_and_shows_the_login_form(browser: Any,
                                                               tmp_path: Path) -> None:
    """`ztp serve` (the real command, its own process): the console line, the login form in
    the browser, an account made with `ztp users add` signs in."""
    import os
    import subprocess
    import sys

    from ..gateway.test_serve import start, stop

    data_dir = tmp_path / "ztp-data"
    proc, info = start(data_dir)
    try:
        url = info["console"].split()[0]
        assert url == info["service"] + "/console"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZTP_")}
        r = subprocess.run([sys.executable, "-m", "ztp", "users", "add", "olga", "--role",
                            "operator", "--data-dir", str(data_dir), "--password-stdin"],
                           input=PASSWORD + "\n", capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        context = browser.new_context()
        page = context.new_page()
        page.goto(url)
        assert page.url == url + "/login"
        assert page.locator("#login-form input[name=password]").count() == 1
        _sign_in(page, info["service"], "olga")
        assert "olga" in page.inner_text("header")
        context.close()
    finally:
        stop(proc)
