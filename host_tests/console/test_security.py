"""The console's security properties over HTTP (issue 18), without a browser: cookie flags,
headers, CSRF, roles, login throttling, session expiry and ending, no key material shown."""

from __future__ import annotations

import re

from ztp.service import Database
from ztp.service._console import disable_user, set_password
from ztp.service._console._models import ConsoleSession

from .conftest import ICCID, PASSWORD, PSK, ConsoleApp, _hasher, csrf_of, login


def _cookie_header(response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def test_login_page_headers_and_session_cookie_flags(console: ConsoleApp) -> None:
    console.add_user("alice", "operator")
    http = console.browser()
    page = http.get("/console/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'",
                      "object-src 'none'", "base-uri 'none'", "form-action 'self'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    r = login(http, "alice")
    assert r.status_code == 303 and r.headers["location"] == "/console/sims"
    cookie = _cookie_header(r, "ztp_console").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie  # plain http on loopback: a Secure cookie would be lost
    sims = http.get("/console/sims")
    assert sims.status_code == 200 and "alice" in sims.text
    assert sims.headers["content-security-policy"] == csp
    assert sims.headers["cache-control"] == "no-store"


def test_cookie_is_secure_over_https_and_behind_a_trusted_proxy(console: ConsoleApp) -> None:
    console.add_user("alice", "operator")
    direct = console.browser("https://testserver")
    r = login(direct, "alice")
    assert "secure" in _cookie_header(r, "ztp_console").lower()
    # a proxy nobody listed: its X-Forwarded-Proto is not believed
    http = console.browser()
    http.headers["X-Forwarded-Proto"] = "https"
    r = login(http, "alice")
    assert "secure" not in _cookie_header(r, "ztp_console").lower()
    # the same request through a proxy listed in the settings: believed
    from dataclasses import replace

    from starlette.testclient import TestClient
    from ztp.service import create_app

    settings = replace(console.settings, console=replace(
        console.settings.console, trusted_proxies=("127.0.0.0/8",)))
    proxied = TestClient(create_app(settings), client=("127.0.0.1", 40000))
    proxied.headers["X-Forwarded-Proto"] = "https"
    page = proxied.get("/console/login")
    form_cookie = _cookie_header(page, "ztp_console_login")
    assert "secure" in form_cookie.lower()
    # (httpx keeps Secure cookies from http URLs: the browser's leg was https)
    r = proxied.post("/console/login", data={"username": "alice", "password": PASSWORD,
                                             "csrf": csrf_of(page.text)},
                     headers={"Cookie": form_cookie.split(";")[0]}, follow_redirects=False)
    assert r.status_code == 303
    assert "secure" in _cookie_header(r, "ztp_console").lower()


def test_pages_need_a_session(console: ConsoleApp) -> None:
    http = console.browser()
    for path in ("/console/sims", f"/console/sims/{ICCID}", "/console/audit",
                 "/console/rotations", "/console/import"):
        r = http.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login", path
    r = http.post(f"/console/sims/{ICCID}/state", data={"state": "suspended", "csrf": "x"})
    assert r.status_code == 401
    assert http.get("/console", follow_redirects=True).url.path == "/console/login"


def test_csrf_token_required_on_every_post(console: ConsoleApp) -> None:
    console.admin.create_sim(ICCID, psk=PSK)
    http = console.signed_in("alice", "operator")
    token = csrf_of(http.get(f"/console/sims/{ICCID}").text)
    for data in ({"state": "suspended"}, {"state": "suspended", "csrf": ""},
                 {"state": "suspended", "csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}):
        r = http.post(f"/console/sims/{ICCID}/state", data=data, follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text, data
    assert console.admin.get_sim(ICCID)["state"] == "active"  # nothing changed
    # another session's token is not this session's
    other = console.signed_in("bob", "operator")
    other_token = csrf_of(other.get("/console/sims").text)
    assert other_token != token
    r = http.post(f"/console/sims/{ICCID}/state", data={"state": "suspended",
                                                        "csrf": other_token})
    assert r.status_code == 403
    r = http.post(f"/console/sims/{ICCID}/state", data={"state": "suspended", "csrf": token},
                  follow_redirects=False)
    assert r.status_code == 303
    assert console.admin.get_sim(ICCID)["state"] == "suspended"
    # the login form has its own token (double submit): a forged login is refused
    r = console.browser().post("/console/login", data={"username": "alice",
                                                       "password": PASSWORD, "csrf": "x"})
    assert r.status_code == 403 and "ztp_console=" not in r.headers.get("set-cookie", "")


def test_viewer_sees_no_buttons_and_its_posts_are_refused(console: ConsoleApp) -> None:
    console.admin.create_sim(ICCID, psk=PSK)
    console.admin.set_config(ICCID, "default", '{"a":1}')
    console.admin.set_config(ICCID, "default", '{"a":2}')
    http = console.signed_in("vera", "viewer")
    for path in (f"/console/sims/{ICCID}", f"/console/sims/{ICCID}/configs/default",
                 "/console/import", "/console/rotations"):
        html = http.get(path).text
        buttons = re.findall(r"<button[^>]*>([^<]*)</button>", html)
        assert buttons in (["Sign out"], ["Sign out", "View configuration"], ["Sign out",
                                                                            "Filter"]), \
            (path, buttons)
        assert "readonly" in html or "configs/default" not in path
    token = csrf_of(http.get("/console/sims").text)
    for path, data in ((f"/console/sims/{ICCID}/state", {"state": "suspended"}),
                       (f"/console/sims/{ICCID}/configs/default",
                        {"body": "x", "if_version": "2", "action": "save"}),
                       (f"/console/sims/{ICCID}/configs/default/rollback", {"version": "1"}),
                       (f"/console/rotations/{ICCID}/retry", {})):
        r = http.post(path, data={**data, "csrf": token}, follow_redirects=False)
        assert r.status_code == 403 and "viewer" in r.text, path
    r = http.post("/console/import", data={"csrf": token},
                  files={"file": ("k.csv", b"iccid,psk\n")})
    assert r.status_code == 403
    assert console.admin.get_sim(ICCID)["state"] == "active"
    assert console.admin.get_config(ICCID, "default")["version"] == 2


def test_login_throttled_per_address_and_per_account(console: ConsoleApp) -> None:
    console.add_user("alice", "operator")
    console.add_user("bob", "operator")
    http = console.browser()
    limits = console.settings.console.account_limits
    for _ in range(limits.burst):
        assert login(http, "alice", "wrong password!").status_code == 401
    r = login(http, "alice")  # even the right password: the account waits
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "ztp_console=" not in ";".join(r.headers.get_list("set-cookie"))
    # the account limit is per account (bob is fine); and it refills with time
    assert login(console.browser(), "bob").status_code == 303
    console.clock.advance(60 / limits.per_minute)
    assert login(console.browser(), "alice").status_code == 303
    # per address: failures spread over many names from one address
    console.clock.advance(60)  # (the address bucket is full again)
    for n in range(console.settings.console.address_limits.burst):
        assert login(http, f"nobody{n}", "wrong password!").status_code == 401
    r = login(http, "bob")
    assert r.status_code == 429
    assert login(console.browser(client=("10.0.0.7", 5000)), "bob").status_code == 303


def test_idle_and_absolute_expiry(console: ConsoleApp) -> None:
    limits = console.settings.console
    http = console.signed_in("alice", "operator")
    console.clock.advance(limits.idle_s - 1)
    assert http.get("/console/sims", follow_redirects=False).status_code == 200
    console.clock.advance(limits.idle_s - 1)  # active: the idle timer restarted
    assert http.get("/console/sims", follow_redirects=False).status_code == 200
    console.clock.advance(limits.idle_s)
    r = http.get("/console/sims", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    # absolute: busy all the time, still out after max_s
    http = console.signed_in("alice")
    for _ in range(limits.max_s // (limits.idle_s // 2)):
        console.clock.advance(limits.idle_s // 2)
        r = http.get("/console/sims", follow_redirects=False)
    assert r.status_code == 303
    db = Database(console.settings.database_url)
    try:
        with db.read() as session:
            rows = list(session.query(ConsoleSession))
        assert rows and all(s.ended_ms is not None for s in rows)
        # a day past their lifetime, dead sessions are deleted at the next sign-in
        console.clock.advance(limits.max_s + 86_400)
        console.signed_in("alice")
        with db.read() as session:
            assert [s.ended_ms for s in session.query(ConsoleSession)] == [None]
    finally:
        db.dispose()


def test_disabled_user_and_new_password_end_every_session(console: ConsoleApp) -> None:
    first = console.signed_in("alice", "operator")
    second = console.signed_in("alice")
    db = Database(console.settings.database_url)
    try:
        with db.write() as session:
            assert set_password(session, _hasher(), "alice", "a new long password",
                                console.clock.now_ms) == 2
        for http in (first, second):
            assert http.get("/console/sims", follow_redirects=False).status_code == 303
        assert login(console.browser(), "alice").status_code == 401  # old password
        again = console.browser()
        assert login(again, "alice", "a new long password").status_code == 303
        with db.write() as session:
            assert disable_user(session, "alice", console.clock.now_ms) == 1
        assert again.get("/console/sims", follow_redirects=False).status_code == 303
        assert login(console.browser(), "alice", "a new long password").status_code == 401
    finally:
        db.dispose()


def test_logout_ends_the_session_server_side(console: ConsoleApp) -> None:
    http = console.signed_in("alice", "operator")
    cookie = http.cookies.get("ztp_console")
    token = csrf_of(http.get("/console/sims").text)
    r = http.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
    replay = console.browser()
    replay.cookies.set("ztp_console", cookie, path="/console")
    assert replay.get("/console/sims", follow_redirects=False).status_code == 303
    events = console.admin.audit(action="console.logout")
    assert [e["actor"] for e in events] == ["alice"]


def test_no_key_material_in_any_page(console: ConsoleApp) -> None:
    kic, kid = bytes(range(100, 116)), bytes(range(200, 216))
    console.admin.import_psks(f"iccid,psk,tag,kic,kid\n{ICCID},{PSK.hex()},1,{kic.hex()},"
                              f"{kid.hex()}\n")
    created = console.admin.create_sim("8944502509186389643", generate_psk=True)
    secrets = [PSK, kic, kid, bytes.fromhex(created["psk"])]
    http = console.signed_in("alice", "admin")
    pages = [http.get(p).text for p in (
        "/console/sims", f"/console/sims/{ICCID}", "/console/sims/8944502509186389643",
        "/console/audit", "/console/rotations", f"/console/sims/{ICCID}/configs/default")]
    import base64

    for secret in secrets:
        for form in (secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode()):
            assert not any(form in p for p in pages)
    assert "psk" in pages[1] and "kic" in pages[1]  # the keys are listed, by tag


def test_passwords_are_hashed_and_never_logged(console: ConsoleApp, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    console.signed_in("alice", "operator")
    login(console.browser(), "alice", "typed into the wrong box")
    assert PASSWORD not in caplog.text and "typed into the wrong box" not in caplog.text
    db = Database(console.settings.database_url)
    try:
        with db.read() as session:
            from ztp.service._console._models import OperatorUser

            user = session.query(OperatorUser).one()
            assert user.password_hash.startswith("$argon2id$")
            assert PASSWORD not in user.password_hash
            assert all(len(s.token_sha256) == 64 for s in session.query(ConsoleSession))
    finally:
        db.dispose()
    events = console.admin.audit(action="console.login")
    assert [e["actor"] for e in events] == ["alice"]
    assert "typed" not in str(console.admin.audit())
