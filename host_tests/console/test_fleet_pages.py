"""The console's pages of device state, label (fleet) configurations and staged rollouts
(issue 18 on issue 17's service side), over HTTP: filters and keyset pages of devices, a
device's resolved source and report history, label configurations created, edited and
deleted, a rollout started, paused, resumed and aborted (each confirmed first), with the
API's checks and audit records; viewers see no buttons and their POSTs are refused, and
every POST needs the session's CSRF token."""

from __future__ import annotations

import re

from .conftest import PSK, ConsoleApp, csrf_of
from .fleet_helpers import digest, get_config, make_iccid, provision

OLD = '{"configuration":{"action":"iot:Blink","n":1}}'
NEW = '{"configuration":{"action":"iot:Blink","n":2}}'


def _device_rows(html: str) -> list[str]:
    return re.findall(r'<a href="/console/devices/(\d+/[0-9a-f]+)">', html)


def _fleet(console: ConsoleApp, n: int) -> list[str]:
    """``n`` SIMs with label fleet=pumps (every third fleet=fans too), the pumps label
    configuration at priority 10, and one device per SIM that got it and confirmed it."""
    iccids = [make_iccid(i) for i in range(n)]
    console.admin.import_psks([
        {"iccid": i, "psk": PSK.hex(),
         "labels": {"fleet": "pumps", **({"site": "fans"} if k % 3 == 0 else {})}}
        for k, i in enumerate(iccids)])
    console.admin.set_label_config("fleet=pumps", OLD, 10)
    for i in iccids:
        provision(console, i, "0a0b")
    return iccids


def test_devices_page_filters_pages_and_detail(console: ConsoleApp) -> None:
    iccids = _fleet(console, 55)
    console.admin.set_label_config("site=fans", '{"fan":1}', 20)
    # site=fans wins (priority 20) on every third SIM: pending until reported
    provision(console, iccids[3], "0a0b", reject_code=42)  # fans turned down: failed
    console.admin.set_config(iccids[1], "default", '{"own":1}')
    http = console.signed_in("vera", "viewer")
    first = http.get("/console/devices")
    assert first.status_code == 200
    assert _device_rows(first.text) == [f"{i}/0a0b" for i in iccids[:50]]
    nxt = re.search(r'id="next-page" href="([^"]+)"', first.text).group(1).replace("&amp;", "&")
    assert _device_rows(http.get(nxt).text) == [f"{i}/0a0b" for i in iccids[50:]]
    failed = http.get("/console/devices", params={"state": "failed"}).text
    assert _device_rows(failed) == [f"{iccids[3]}/0a0b"]
    assert "rejected" in failed and ">42<" in failed  # outcome and result code
    pending = http.get("/console/devices", params={"state": "pending"}).text
    assert _device_rows(pending) == [f"{i}/0a0b" for k, i in enumerate(iccids)
                                     if (k % 3 == 0 and k != 3) or k == 1]
    fans = http.get("/console/devices", params={"label": "site=fans"}).text
    assert _device_rows(fans) == [f"{i}/0a0b" for k, i in enumerate(iccids) if k % 3 == 0]
    prefix = iccids[10][:-2]
    rows = _device_rows(http.get("/console/devices", params={"q": prefix}).text)
    assert rows == [f"{i}/0a0b" for i in iccids if i.startswith(prefix)] and rows
    in_sync = _device_rows(http.get("/console/devices", params={"state": "in_sync"}).text)
    assert f"{iccids[5]}/0a0b" in in_sync and f"{iccids[3]}/0a0b" not in in_sync
    for bad in ({"state": "lost"}, {"label": "nolabel"}, {"q": "89x"}, {"after": "123"}):
        assert http.get("/console/devices", params=bad).status_code == 400, bad
    # a device's page: where its body comes from, and its reports
    page = http.get(f"/console/devices/{iccids[3]}/0a0b").text
    assert 'id="device-state">failed<' in page
    assert 'href="/console/fleets/site=fans">site=fans</a>, priority 20' in page
    assert page.count("device.report") >= 3  # applied, confirmed, rejected
    assert "code=42" in page and digest(OLD) in page
    own = http.get(f"/console/devices/{iccids[1]}/0a0b").text
    assert "the SIM's default configuration" in own
    assert http.get(f"/console/devices/{iccids[1]}/ffff").status_code == 404
    sim = http.get(f"/console/sims/{iccids[3]}").text
    assert f'href="/console/devices/{iccids[3]}/0a0b"' in sim and "rejected (42)" in sim


def test_fleets_create_edit_delete(console: ConsoleApp) -> None:
    http = console.signed_in("otto", "operator")
    page = http.get("/console/fleets").text
    assert 'data-max-bytes="254"' in page and 'id="byte-counter"' in page
    token = csrf_of(page)
    r = http.post("/console/fleets", data={"csrf": token, "label": "fleet=pumps",
                                           "priority": "10", "body": OLD, "comment": "first"},
                  follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/console/fleets/fleet=")
    assert console.admin.label_config("fleet=pumps")["body"] == OLD
    event = console.admin.audit(action="fleet.set")[0]
    assert event["actor"] == "otto" and event["detail"]["priority"] == 10
    listed = http.get("/console/fleets").text
    assert 'href="/console/fleets/fleet=pumps"' in listed and "iot:Blink" in listed
    # 255 bytes: refused with the reason, the text kept
    long_body = "x" * 255
    r = http.post("/console/fleets", data={"csrf": token, "label": "fleet=fans",
                                           "priority": "5", "body": long_body})
    assert r.status_code == 400 and "255 bytes" in r.text and long_body in r.text
    # a taken priority: 409, as the API says
    r = http.post("/console/fleets", data={"csrf": token, "label": "fleet=fans",
                                           "priority": "10", "body": "{}"})
    assert r.status_code == 409 and "priorit" in r.text
    for bad in ({"label": "nolabel", "priority": "1", "body": "x"},
                {"label": "fleet=fans", "priority": "-1", "body": "x"}):
        assert http.post("/console/fleets", data={"csrf": token, **bad}).status_code == 400
    assert [c["label"] for c in console.admin.label_configs()] == ["fleet=pumps"]
    # edit from its own page: a new version
    page = http.get("/console/fleets/fleet=pumps").text
    assert 'id="current-version">1<' in page and OLD.replace('"', "&#34;") in page
    r = http.post("/console/fleets", data={"csrf": token, "from": "fleet",
                                           "label": "fleet=pumps", "priority": "12",
                                           "body": NEW}, follow_redirects=False)
    assert r.status_code == 303
    now = console.admin.label_config("fleet=pumps")
    assert (now["version"], now["priority"], now["body"]) == (2, 12, NEW)
    page = http.get("/console/fleets/fleet=pumps").text
    assert "first" in page and page.count("iot:Blink") >= 2  # the history
    r = http.post("/console/fleets", data={"csrf": token, "from": "fleet",
                                           "label": "fleet=pumps", "priority": "12",
                                           "body": ""})
    assert r.status_code == 400 and 'id="current-version">2<' in r.text
    # delete
    r = http.post("/console/fleets/fleet=pumps/delete", data={"csrf": token},
                  follow_redirects=False)
    assert r.status_code == 303
    assert console.admin.label_configs() == []
    assert console.admin.audit(action="fleet.delete")[0]["actor"] == "otto"
    assert http.post("/console/fleets/fleet=pumps/delete",
                     data={"csrf": token}).status_code == 404


def test_rollout_start_pause_resume_abort(console: ConsoleApp) -> None:
    iccids = _fleet(console, 12)
    http = console.signed_in("otto", "operator")
    page = http.get("/console/rollouts", params={"label": "fleet=pumps"}).text
    assert 'value="fleet=pumps"' in page and 'id="byte-counter"' in page
    token = csrf_of(page)
    form = {"csrf": token, "label": "fleet=pumps", "body": NEW, "stages": "50",
            "devices": f"{iccids[0]}/0a0b", "max_failures": "1"}
    for bad, status in ((dict(form, stages="0"), 400), (dict(form, stages="10 x"), 400),
                        (dict(form, devices="123"), 400), (dict(form, body=OLD), 409),
                        (dict(form, label="fleet=none"), 404),
                        (dict(form, max_failures="-1"), 400)):
        r = http.post("/console/rollouts", data=bad)
        assert r.status_code == status, (bad, r.text)
    assert 'value="fleet=pumps"' in r.text  # the form comes back filled in
    assert console.admin.rollouts() == []
    r = http.post("/console/rollouts", data=form, follow_redirects=False)
    assert r.status_code == 303
    rid = int(r.headers["location"].split("?")[0].rsplit("/", 1)[1])
    started = console.admin.rollout(rid)
    assert (started["state"], started["stages"], started["max_failures"]) == (
        "running", [0, 50, 100], 1)
    assert console.admin.audit(action="rollout.start")[0]["actor"] == "otto"
    assert get_config(console, iccids[0], "0a0b") == NEW.encode()  # listed: first
    page = http.get(f"/console/rollouts/{rid}").text
    assert 'id="rollout-state">running<' in page and "1 of 3 (0 %" in page
    assert "stops at more than 1 failure" in page
    listing = http.get("/console/rollouts").text
    assert f'href="/console/rollouts/{rid}"' in listing and "0 of 1" in listing
    assert f'href="/console/rollouts/{rid}">rollout {rid}' in http.get(
        "/console/devices", params={"q": iccids[0]}).text
    # each action asks first: nothing changes without confirm=1
    r = http.post(f"/console/rollouts/{rid}/pause", data={"csrf": token})
    assert r.status_code == 200 and 'id="confirm-pause"' in r.text
    assert console.admin.rollout(rid)["state"] == "running"
    r = http.post(f"/console/rollouts/{rid}/pause", data={"csrf": token, "confirm": "1"},
                  follow_redirects=False)
    assert r.status_code == 303 and console.admin.rollout(rid)["state"] == "paused"
    r = http.post(f"/console/rollouts/{rid}/pause", data={"csrf": token, "confirm": "1"})
    assert r.status_code == 409 and "paused" in r.text
    r = http.post(f"/console/rollouts/{rid}/resume", data={"csrf": token, "confirm": "1"},
                  follow_redirects=False)
    assert r.status_code == 303 and console.admin.rollout(rid)["state"] == "running"
    r = http.post(f"/console/rollouts/{rid}/abort", data={"csrf": token})
    assert "roll" in r.text and 'id="confirm-abort"' in r.text
    assert console.admin.rollout(rid)["state"] == "running"
    r = http.post(f"/console/rollouts/{rid}/abort", data={"csrf": token, "confirm": "1"},
                  follow_redirects=False)
    assert r.status_code == 303
    assert console.admin.rollout(rid)["state"] == "aborted"
    assert get_config(console, iccids[0], "0a0b") == OLD.encode()  # rolled back
    assert [e["actor"] for a in ("pause", "resume", "abort")
            for e in console.admin.audit(action=f"rollout.{a}")] == ["otto"] * 3
    page = http.get(f"/console/rollouts/{rid}").text
    assert 'id="rollout-state">aborted<' in page and 'id="abort"' not in page
    assert http.post(f"/console/rollouts/{rid}/explode",
                     data={"csrf": token, "confirm": "1"}).status_code == 400
    assert http.get("/console/rollouts/999").status_code == 404


def test_viewer_sees_no_buttons_and_csrf_is_checked(console: ConsoleApp) -> None:
    iccids = _fleet(console, 3)
    rid = console.admin.start_rollout("fleet=pumps", NEW, stages=[100])["id"]
    viewer = console.signed_in("vera", "viewer")
    for path in ("/console/devices", f"/console/devices/{iccids[0]}/0a0b", "/console/fleets",
                 "/console/fleets/fleet=pumps", "/console/rollouts",
                 f"/console/rollouts/{rid}"):
        r = viewer.get(path)
        assert r.status_code == 200, path
        buttons = re.findall(r"<button[^>]*>([^<]*)</button>", r.text)
        assert buttons in (["Sign out"], ["Sign out", "Filter"]), (path, buttons)
    posts = (("/console/fleets", {"label": "fleet=x", "priority": "1", "body": "{}"}),
             ("/console/fleets/fleet=pumps/delete", {}),
             ("/console/rollouts", {"label": "fleet=pumps", "body": OLD}),
             (f"/console/rollouts/{rid}/pause", {"confirm": "1"}),
             (f"/console/rollouts/{rid}/abort", {"confirm": "1"}))
    token = csrf_of(viewer.get("/console/fleets").text)
    for path, data in posts:
        r = viewer.post(path, data={**data, "csrf": token}, follow_redirects=False)
        assert r.status_code == 403 and "viewer" in r.text, path
    operator = console.signed_in("otto", "operator")
    good = csrf_of(operator.get("/console/fleets").text)
    for path, data in posts:
        for csrf in ("", good[:-1] + ("A" if good[-1] != "A" else "B")):
            r = operator.post(path, data={**data, "csrf": csrf}, follow_redirects=False)
            assert r.status_code == 403 and "CSRF" in r.text, path
    assert console.admin.rollout(rid)["state"] == "running"
    assert [c["label"] for c in console.admin.label_configs()] == ["fleet=pumps"]
    anonymous = console.browser()
    for path in ("/console/devices", "/console/fleets", f"/console/rollouts/{rid}"):
        r = anonymous.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert PSK.hex() not in viewer.get(f"/console/devices/{iccids[0]}/0a0b").text
