"""What an operator does in the console, over HTTP (issue 18): search and page SIMs (the
label index kept by triggers), a SIM's page, the configuration editor (byte limit, version
conflict, diff, rollback; the device gets the saved body), the key file import (bad rows by
line, a re-upload), rotations and audit filters; and ``ztp users``."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from ztp.iccid import luhn_check_digit
from ztp.service import Database, ServiceClientError, Settings
from ztp.service._console._models import SimLabel

from .conftest import ICCID, PSK, ConsoleApp, csrf_of

IDENTITY_HEX = "984405529081369836f5"


def _iccids(n: int, base: str = "894450250918600") -> list[str]:
    out = []
    for i in range(n):
        body = f"{base}{i:03d}"
        out.append(body + str(luhn_check_digit(body)))
    return out


def _listed(html: str) -> list[str]:
    return re.findall(r'<a href="/console/sims/(\d+)">', html)


def test_search_by_prefix_label_and_state_with_keyset_pages(console_db: ConsoleApp) -> None:
    console = console_db
    iccids = _iccids(120)
    rows = [{"iccid": i, "psk": PSK.hex(), "labels": {"fleet": "north" if n % 3 else "south"}}
            for n, i in enumerate(iccids)]
    console.admin.import_psks(rows)
    console.admin.update_sim(iccids[4], labels={"fleet": "south", "site": "b"})
    console.admin.suspend_sim(iccids[7])
    http = console.signed_in("alice", "viewer")
    first = http.get("/console/sims").text
    assert _listed(first) == iccids[:50]
    after = re.search(r'id="next-page" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = http.get(after).text
    assert _listed(second) == iccids[50:100]
    south = [i for n, i in enumerate(iccids) if n % 3 == 0 or n == 4]
    html = http.get("/console/sims", params={"label": "fleet=south"}).text
    assert _listed(html) == south[:50]
    html = http.get("/console/sims", params={"label": "site=b"}).text
    assert _listed(html) == [iccids[4]]
    html = http.get("/console/sims", params={"state": "suspended"}).text
    assert _listed(html) == [iccids[7]]
    # label and state together (the index copies the state: the suspension updated it)
    html = http.get("/console/sims", params={"label": "fleet=north", "state": "suspended"})
    assert _listed(html.text) == [iccids[7]]
    html = http.get("/console/sims", params={"label": "fleet=south", "state": "suspended"})
    assert _listed(html.text) == []
    prefix = iccids[0][:16]  # ...0918600 + first digit of the counter
    html = http.get("/console/sims", params={"q": prefix}).text
    assert _listed(html) == [i for i in iccids if i.startswith(prefix)][:50]
    assert http.get("/console/sims", params={"q": "89x"}).status_code == 400
    assert http.get("/console/sims", params={"label": "nolabel"}).status_code == 400
    # the index holds exactly the SIMs' labels (triggers on insert and on label updates)
    db = Database(console.settings.database_url)
    try:
        with db.read() as session:
            labels = {(r.iccid, r.key, r.value) for r in session.scalars(select(SimLabel))}
    finally:
        db.dispose()
    expected = {(i, "fleet", "north" if n % 3 and n != 4 else "south")
                for n, i in enumerate(iccids)} | {(iccids[4], "site", "b")}
    assert labels == expected
    console.admin.delete_sim(iccids[4])
    assert _listed(http.get("/console/sims", params={"label": "site=b"}).text) == []


def test_sim_page_suspend_and_activate(console: ConsoleApp) -> None:
    console.admin.create_sim(ICCID, psk=PSK, labels={"fleet": "north"})
    console.admin.set_config(ICCID, "default", '{"apn":"iot"}')
    assert console.device_get("00112233", IDENTITY_HEX).status_code == 200
    http = console.signed_in("olga", "operator")
    html = http.get(f"/console/sims/{ICCID}").text
    assert '{&#34;apn&#34;:&#34;iot&#34;}' in html  # autoescaped
    assert "config.deliver" in html and "00112233" in html and "fleet=north" in html
    token = csrf_of(html)
    r = http.post(f"/console/sims/{ICCID}/state", data={"state": "suspended", "csrf": token})
    assert r.status_code == 200 and "SIM suspended." in r.text
    assert console.admin.get_sim(ICCID)["state"] == "suspended"
    http.post(f"/console/sims/{ICCID}/state", data={"state": "active", "csrf": token})
    events = console.admin.audit(iccid=ICCID, action="sim.update")
    assert [e["actor"] for e in events] == ["olga", "olga"]
    assert http.get("/console/sims/8944502509186389643").status_code == 404


def test_config_editor_limit_conflict_diff_rollback_and_delivery(
        console_db: ConsoleApp) -> None:
    console = console_db
    console.admin.create_sim(ICCID, psk=PSK)
    http = console.signed_in("olga", "operator")
    url = f"/console/sims/{ICCID}/configs/00112233"
    page = http.get(url)
    assert page.status_code == 200 and 'name="if_version" value="0"' in page.text
    token = csrf_of(page.text)

    def save(body: str, if_version: int, action: str = "save"):
        return http.post(url, data={"csrf": token, "body": body, "if_version": str(if_version),
                                    "action": action, "comment": "test"})

    too_long = '{"k":"' + "é" * 124 + '"}'  # 124 characters of 2 bytes: 256 bytes
    r = save(too_long, 0)
    assert r.status_code == 400 and "256 bytes" in r.text and "at most 254" in r.text
    assert "é" * 124 in r.text  # the operator's text is kept
    r = save('{"k":1}', 0)
    assert r.status_code == 200 and "Configuration saved." in r.text
    assert r.url.path == url
    r = save('{"k":2}', 1, action="diff")
    assert r.status_code == 200 and "current -&gt; edited" in r.text
    assert '<span class="add">+ &#34;k&#34;: 2</span>' in r.text
    assert console.admin.get_config(ICCID, "00112233")["version"] == 1  # a diff saves nothing
    save('{"k":2}', 1)
    r = save('{"k":3}', 1)  # edited from version 1, but version 2 is current
    assert r.status_code == 409 and "Version conflict" in r.text
    assert 'name="if_version" value="2"' in r.text  # saving again replaces version 2
    assert console.admin.get_config(ICCID, "00112233")["body"] == '{"k":2}'
    r = http.post(url + "/rollback", data={"csrf": token, "version": "1"})
    assert r.status_code == 200 and "Rolled back" in r.text
    cur = console.admin.get_config(ICCID, "00112233")
    assert (cur["version"], cur["body"]) == (3, '{"k":1}')
    actions = [(e["action"], e["actor"], e["version"])
               for e in console.admin.audit(iccid=ICCID) if e["action"].startswith("config.")]
    assert actions == [("config.set", "olga", 1), ("config.set", "olga", 2),
                       ("config.rollback", "olga", 3)]
    r = http.get(url, params={"diff": "2"})
    assert "version 2 -&gt; current" in r.text
    # the device gets the saved body at its next request
    r = console.device_get("00112233", IDENTITY_HEX)
    assert r.status_code == 200 and r.content == b'{"k":1}'
    # delete: a deletion version; the device falls back to the default (none here: 404)
    r = http.post(url + "/delete", data={"csrf": token})
    assert r.status_code == 200 and "Configuration deleted" in r.text
    assert "No configuration for this device yet (deleted)" in r.text
    with pytest.raises(ServiceClientError) as refused:
        console.device_get("00112233", IDENTITY_HEX)
    assert refused.value.status == 404
    assert [v["deleted"] for v in console.admin.history(ICCID, "00112233")][:1] == [True]
    # the device id is validated like the API's
    assert http.get(f"/console/sims/{ICCID}/configs/xyz").status_code == 400
    r = http.get(f"/console/sims/{ICCID}/configs", params={"device": "AABB"},
                 follow_redirects=False)
    assert r.headers["location"] == f"/console/sims/{ICCID}/configs/aabb"


def test_import_reports_bad_rows_by_line_and_a_reupload(console: ConsoleApp) -> None:
    good = _iccids(3, "894450250918601")
    http = console.signed_in("olga", "operator")
    token = csrf_of(http.get("/console/import").text)

    def upload(text: str):
        return http.post("/console/import", data={"csrf": token},
                         files={"file": ("keys.csv", text.encode(), "text/csv")})

    bad = (f"iccid,psk\n{good[0]},{PSK.hex()}\n8944502509186389630,{PSK.hex()}\n"
           f"{good[1]},abcd\n{good[2]},{PSK.hex()},extra\n{good[0]},{PSK.hex()}\n")
    r = upload(bad)
    assert r.status_code == 400 and "Nothing imported: 4 bad row(s)" in r.text
    lines = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", r.text)
    assert [n for n, _ in lines] == ["3", "4", "5", "6"]
    assert "Luhn" in lines[0][1] or "check digit" in lines[0][1]
    assert "16 or 32 bytes" in lines[1][1]
    assert "line 2" in lines[3][1]
    assert console.admin.list_sims() == []  # nothing of a bad file
    text = "iccid,psk\n" + "".join(f"{i},{PSK.hex()}\n" for i in good)
    r = upload(text)
    assert r.status_code == 200 and "3 SIM(s) registered" in r.text
    r = upload(text)
    assert r.status_code == 200 and "0 SIM(s) registered" in r.text
    assert "3 PSK(s) already there (unchanged)" in r.text
    assert all(i in r.text for i in good) and "Already registered before this upload (3)" \
        in r.text
    clash = f"iccid,psk,tag\n{good[0]},{bytes(16).hex()},1\n"
    r = upload(clash)
    assert r.status_code == 409 and "already has a different psk" in r.text


def test_rotations_page_and_audit_filters(console: ConsoleApp) -> None:
    console.admin.import_psks([{"iccid": ICCID, "psk": PSK.hex(), "kic": "11" * 16,
                                "kid": "22" * 16}])
    console.admin.request("POST", "/v1/rotations", json={"iccids": [ICCID], "queue": True})
    http = console.signed_in("olga", "operator")
    html = http.get("/console/rotations").text
    assert ICCID in html and "pending" in html and ">Cancel</button>" in html
    token = csrf_of(html)
    r = http.post(f"/console/rotations/{ICCID}/cancel", data={"csrf": token})
    assert r.status_code == 200 and "Rotation cancelled." in r.text
    assert "cancelled" in http.get("/console/rotations", params={"state": "cancelled"}).text
    r = http.post(f"/console/rotations/{ICCID}/retry", data={"csrf": token})
    assert r.status_code == 404  # no open rotation: the domain's own refusal
    html = http.get("/console/audit", params={"actor": "olga"}).text
    assert "rotation.cancel" in html and "sim.import" not in html
    html = http.get("/console/audit", params={"action": "rotation."}).text
    assert "rotation.start" in html and "rotation.cancel" in html and "console.login" \
        not in html
    html = http.get("/console/audit", params={"iccid": ICCID, "action": "key.add"}).text
    assert html.count("<td>key.add</td>") == 4  # psk, kic, kid, and the rotation's new psk
    future = "2100-01-01T00:00"
    assert "No event matches." in http.get("/console/audit", params={"since": future}).text
    assert http.get("/console/audit", params={"since": "yesterday"}).status_code == 400


def test_users_cli(tmp_path, monkeypatch) -> None:
    from ztp.service._users_cli import users_group

    monkeypatch.setenv("ZTP_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ZTP_MASTER_KEY", raising=False)
    monkeypatch.delenv("ZTP_DATABASE_URL", raising=False)
    from ztp.service import create_admin

    create_admin(Settings.from_env(tmp_path, create_key=True), "admin")
    runner = CliRunner()
    r = runner.invoke(users_group, ["add", "alice", "--role", "operator", "--password-stdin"],
                      input="a long enough password\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(users_group, ["add", "alice", "--role", "viewer", "--password-stdin"],
                      input="a long enough password\n")
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(users_group, ["add", "admin", "--role", "viewer", "--password-stdin"],
                      input="a long enough password\n")
    assert r.exit_code == 1 and "API client id" in r.output
    r = runner.invoke(users_group, ["add", "bob", "--role", "viewer", "--password-stdin"],
                      input="short\n")
    assert r.exit_code == 1 and "12-256 characters" in r.output
    r = runner.invoke(users_group, ["passwd", "alice", "--password-stdin"],
                      input="another long password\n")
    assert r.exit_code == 0 and "0 session(s) ended" in r.output
    r = runner.invoke(users_group, ["disable", "alice"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(users_group, ["list"])
    assert re.search(r"alice\s+operator\s+disabled", r.output)
    assert "long enough" not in r.output and "another long" not in r.output


def test_configuration_file_import(console: ConsoleApp) -> None:
    sims = _iccids(2, "894450250918602")
    for i in sims:
        console.admin.create_sim(i, psk=PSK)
    http = console.signed_in("olga", "operator")
    token = csrf_of(http.get("/console/import").text)

    def upload(text: str):
        return http.post("/console/import", data={"csrf": token, "kind": "configs"},
                         files={"file": ("configs.csv", text.encode(), "text/csv")})

    long_body = '"{""k"":""' + "x" * 250 + '""}"'
    bad = ("iccid,device_id,body,require_json\n"
           f'{sims[0]},,"{{""apn"":""iot""}}",true\n'
           f"{sims[0]},zz,plain,\n"
           f"{sims[1]},0011,{long_body},\n"
           f"{sims[1]},0011,not json,true\n"
           f"8944502509186389643,,x,\n"
           f'{sims[0]},default,"{{}}",\n')
    r = upload(bad)
    assert r.status_code == 400 and "Nothing imported: 5 bad row(s)" in r.text
    lines = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", r.text)
    assert [n for n, _ in lines] == ["3", "4", "5", "6", "7"]
    assert "device id" in lines[0][1] and "at most 254" in lines[1][1]
    assert "JSON" in lines[2][1] and "not registered" in lines[3][1]
    assert "line 2" in lines[4][1]
    assert console.admin.list_configs(sims[0]) == []
    good = ("iccid,device_id,body,comment\n"
            f'{sims[0]},,"{{""apn"":""iot""}}",fleet default\n'
            f"{sims[0]},00AA,plain text,meter\n{sims[1]},0011,b,\n")
    r = upload(good)
    assert r.status_code == 200 and "3 configuration(s) saved" in r.text
    r = upload(good)
    assert "0 configuration(s) saved" in r.text and "3 already there" in r.text
    r = upload(good.replace("plain text", "plain text v2"))
    assert "1 configuration(s) saved" in r.text and "2 already there" in r.text
    assert console.admin.get_config(sims[0], "00aa")["version"] == 2
    assert console.admin.get_config(sims[0], "default")["body"] == '{"apn":"iot"}'
    assert {e["actor"] for e in console.admin.audit(action="config.import")} == {"olga"}
