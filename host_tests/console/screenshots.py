"""Screenshots of the console's main pages for docs/console.md, taken with the same headless
Debian chromium as the browser tests, against a service on loopback filled with sample data.

    PYTHONPATH=tools python -m host_tests.console.screenshots docs/console
"""

from __future__ import annotations

import json
import sys
import tempfile
import zlib
from pathlib import Path

from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import (
    Database,
    ServiceClient,
    ServiceClientError,
    Settings,
    bootstrap_credentials,
    create_app,
)
from ztp.service._console import create_user
from ztp.service._keys import MasterKeyring, SecretHasher

from ..service.conftest import serve_app
from .browser import chromium

PASSWORD = "correct horse battery"


def _iccid(n: int) -> str:
    body = f"894450250918{n:06d}"
    return body + luhn_check_digit(body)


def _fill(admin: ServiceClient, gateway: ServiceClient) -> list[str]:
    iccids = [_iccid(n) for n in range(100, 160)]
    fleets = ["north", "south", "harbour"]
    admin.import_psks([{"iccid": i, "psk": bytes(16).hex(), "kic": "11" * 16, "kid": "22" * 16,
                        "labels": {"fleet": fleets[n % 3], "site": f"s{n % 5}"}}
                       for n, i in enumerate(iccids)])
    admin.suspend_sim(iccids[4])
    first = iccids[0]
    admin.set_config(first, "default", '{"apn":"iot.example","interval_s":300}',
                     comment="fleet default")
    admin.set_config(first, "0a1b2c3d", '{"apn":"iot.example","interval_s":60}',
                     comment="meter 7")
    admin.set_config(first, "0a1b2c3d", '{"apn":"iot.example","interval_s":120,"led":1}',
                     comment="slower, LED on")
    ident = iccid_to_hex(first)
    for device in ("0a1b2c3d", "0a1b2c3d", "77889900"):
        gateway.request("GET", f"/v1/config/{device}", params={"iccid": ident},
                        headers={"X-ZTP-Identity": ident, "X-ZTP-Key-Tag": "1",
                                 "X-ZTP-Gateway": "gw-eu-1"})
    gateway.request("POST", "/v1/data/0a1b2c3d", params={"iccid": ident},
                    content=b'{"t":21.5,"rssi":-71}',
                    headers={"X-ZTP-Identity": ident, "X-ZTP-Key-Tag": "1",
                             "X-ZTP-Gateway": "gw-eu-1", "Content-Type": "application/json"})
    admin.request("POST", "/v1/rotations", json={"iccids": iccids[10:16], "queue": True})
    _fill_fleets(admin, gateway, iccids)
    return iccids


def _report(gateway: ServiceClient, iccid: str, device: str, doc: dict[str, object]) -> None:
    ident = iccid_to_hex(iccid)
    gateway.request("POST", f"/v1/data/{device}", params={"iccid": ident},
                    content=json.dumps(doc, separators=(",", ":")).encode(),
                    headers={"X-ZTP-Identity": ident, "X-ZTP-Key-Tag": "1",
                             "X-ZTP-Gateway": "gw-eu-1"})


def _fill_fleets(admin: ServiceClient, gateway: ServiceClient, iccids: list[str]) -> None:
    """Label configurations, devices that got them and reported, and a rollout on fleet=north
    half-way through its first stage (confirmations and one rejection)."""
    north = '{"apn":"iot.example","interval_s":300}'
    admin.set_label_config("fleet=north", north, 10, comment="north default")
    admin.set_label_config("fleet=south", '{"apn":"iot.example","interval_s":600}', 20)
    admin.set_label_config("site=s3", '{"apn":"iot.example","interval_s":900,"led":0}', 30,
                           require_json=True)
    for n, iccid in enumerate(iccids[1:31], start=1):
        ident = iccid_to_hex(iccid)
        try:
            body = gateway.request("GET", "/v1/config/0c0d0e0f", params={"iccid": ident},
                                   headers={"X-ZTP-Identity": ident, "X-ZTP-Key-Tag": "1",
                                            "X-ZTP-Gateway": "gw-eu-1"}).content
        except ServiceClientError:
            continue  # a suspended SIM, a fleet without a configuration
        if n % 7 == 0:
            continue  # not reported yet: pending
        digest = f"crc32:{zlib.crc32(body):08x}"
        _report(gateway, iccid, "0c0d0e0f", {"v": 1, "digest": digest, "outcome": "applied",
                                             "code": 0, "version": "1.4.2"})
        _report(gateway, iccid, "0c0d0e0f", {"v": 1, "digest": digest, "outcome": "confirmed",
                                             "code": 0, "version": "1.4.2"})
    new = '{"apn":"iot.example","interval_s":120}'
    rollout = admin.start_rollout("fleet=north", new, stages=[50, 100], max_failures=2,
                                  comment="faster reporting")
    new_digest = f"crc32:{zlib.crc32(new.encode()):08x}"
    old_digest = f"crc32:{zlib.crc32(north.encode()):08x}"
    reported = 0
    for device in admin.devices(label="fleet=north", limit=1000):
        if (device["desired"] or {}).get("rollout") != rollout["id"]:
            continue
        iccid = device["iccid"]
        ident = iccid_to_hex(iccid)
        gateway.request("GET", "/v1/config/0c0d0e0f", params={"iccid": ident},
                        headers={"X-ZTP-Identity": ident, "X-ZTP-Key-Tag": "1",
                                 "X-ZTP-Gateway": "gw-eu-1"})
        if reported == 0:
            _report(gateway, iccid, "0c0d0e0f", {"v": 1, "digest": old_digest,
                                                 "outcome": "rejected", "code": 42,
                                                 "rejected": new_digest, "version": "1.4.2"})
        elif reported < 3:
            for outcome in ("applied", "confirmed"):
                _report(gateway, iccid, "0c0d0e0f", {"v": 1, "digest": new_digest,
                                                     "outcome": outcome, "code": 0,
                                                     "version": "1.4.2"})
        reported += 1


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ztp-shots-"))
    st = Settings(database_url=f"sqlite:///{tmp / 'ztp.db'}",
                  master_key=MasterKeyring.generate(), fast_hashing=True)
    creds = bootstrap_credentials(st)
    db = Database(st.database_url)
    with db.write() as session:
        create_user(session, SecretHasher(fast=True), "olga", "operator", PASSWORD,
                    st.clock_ms())
        create_user(session, SecretHasher(fast=True), "vera", "viewer", PASSWORD,
                    st.clock_ms())
    db.dispose()
    with serve_app(create_app(st)) as url, chromium() as browser:
        admin = ServiceClient(url)
        admin.login(creds.admin_id, creds.admin_secret)
        gateway = ServiceClient(url)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        iccids = _fill(admin, gateway)
        page = browser.new_page(viewport={"width": 1280, "height": 800})

        def shot(name: str, full_page: bool = True) -> None:
            page.screenshot(path=str(out / f"{name}.png"), full_page=full_page)
            print(out / f"{name}.png")

        page.goto(url + "/console")
        page.fill("input[name=username]", "olga")
        shot("login")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/console/sims")
        page.fill("input[name=label]", "fleet=north")
        page.click("#sim-search button")
        shot("sims", full_page=False)
        page.goto(url + f"/console/sims/{iccids[0]}")
        shot("sim")
        page.goto(url + f"/console/sims/{iccids[0]}/configs/0a1b2c3d")
        page.fill("#body", '{"apn":"iot.example","interval_s":120,"led":1,"note":"'
                  + "x" * 200 + '"}')
        page.click("#save")
        shot("config-refused")
        page.fill("#body", '{"apn":"iot.example","interval_s":90,"led":0}')
        page.click("#show-diff")
        shot("config-diff")
        key_file = tmp / "keys.csv"
        key_file.write_text("iccid,psk\n" + f"{_iccid(500)},{'00' * 16}\n"
                            + "8944502509186389630," + "00" * 16 + "\n"
                            + f"{_iccid(501)},abcd\n" + f"{iccids[1]},{'00' * 16}\n")
        page.goto(url + "/console/import")
        page.set_input_files("#import-file", str(key_file))
        page.click("#import-submit")
        shot("import")
        page.goto(url + "/console/rotations")
        shot("rotations")
        page.goto(url + "/console/audit")
        shot("audit", full_page=False)
        page.goto(url + "/console/devices?label=fleet%3Dnorth")
        shot("devices", full_page=False)
        page.goto(url + "/console/fleets")
        shot("fleets")
        page.goto(url + "/console/rollouts")
        rollout = page.locator("#rollouts tbody a").first.get_attribute("href")
        shot("rollouts")
        page.goto(url + str(rollout))
        page.click("#abort")
        shot("rollout-abort")
        page.click("#logout")
        page.fill("input[name=username]", "vera")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/console/sims")
        page.goto(url + f"/console/sims/{iccids[0]}/configs/0a1b2c3d")
        shot("config-viewer")
        admin.close()
        gateway.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console"))
