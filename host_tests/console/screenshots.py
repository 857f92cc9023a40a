"""Screenshots of the console's main pages for docs/console.md, taken with the same headless
Debian chromium as the browser tests, against a service on loopback filled with sample data.

    PYTHONPATH=tools python -m host_tests.console.screenshots docs/console
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import Database, ServiceClient, Settings, bootstrap_credentials, create_app
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
    return iccids


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
