"""A batch of 1000 SIMs rotated with progress and no failures (in-process SIMs: the service
sends each SMS-PP download straight into its card; the confirmation is the device request a
gateway forwards after a handshake with the key the card now holds)."""

from __future__ import annotations

import os

from starlette.testclient import TestClient
from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import ServiceClient as AdminClient
from ztp.service import bootstrap_credentials, create_app

from .harness import DEVICE, FakeClock, InProcessSims, card, make_settings

N = 1000


def iccids(n: int) -> list[str]:
    out = []
    for i in range(n):
        payload = f"894450250918{i:06d}"
        out.append(payload + luhn_check_digit(payload))
    return out


def test_batch_of_1000_rotated_with_progress_and_no_failures(tmp_path):
    clock = FakeClock()
    sims = InProcessSims()
    settings = make_settings(tmp_path, clock, sims)
    creds = bootstrap_credentials(settings)
    app = create_app(settings)
    rows = []
    for iccid in iccids(N):
        psk = os.urandom(16)
        sims.sims[iccid] = card(iccid, psk)
        rows.append({"iccid": iccid, "psk": psk.hex(), "tag": "1",
                     "kic": sims.sims[iccid].state.ota.kic.hex(),
                     "kid": sims.sims[iccid].state.ota.kid.hex()})

    with TestClient(app) as http:  # in-process HTTP: no sockets, no per-request latency
        admin = AdminClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        assert admin.request("POST", "/v1/sims/import", json=rows).json()["sims_created"] == N
        started = admin.request("POST", "/v1/rotations", json={"all": True}).json()
        assert started["started"] == N and started["skipped"] == []
        batch = started["batch"]
        progress = admin.request("GET", f"/v1/rotations/batches/{batch}").json()
        assert progress["states"]["pending"] == N and progress["done"] == 0

        summary = admin.request("POST", "/v1/rotations/run").json()
        assert summary["sent"] == N and summary["por_installed"] == N
        assert summary["failed"] == summary["no_por"] == summary["por_invalid"] == 0
        progress = admin.request("GET", f"/v1/rotations/batches/{batch}").json()
        assert progress["states"]["delivered"] == N and progress["failed"] == 0

        gw = http
        token = gw.post("/v1/auth/token", json={
            "grant_type": "client_credentials", "client_id": creds.gateway_id,
            "client_secret": creds.gateway_secret}).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for n, (iccid, sim) in enumerate(sims.sims.items(), 1):
            ident = iccid_to_hex(iccid)
            tag = str(sim.state.psk_version)
            assert tag == "2"
            if n % 10 == 1:  # a sample: the card holds exactly the service's key 2
                keys = {k["tag"]: k["psk"] for k in gw.get(f"/v1/gateway/psks/{ident}",
                                                            headers=auth).json()["keys"]}
                assert keys == {"1": rows[n - 1]["psk"], "2": sim.state.psk.hex()}
            gw.get(f"/v1/config/{DEVICE.hex()}", params={"iccid": ident},
                   headers={**auth, "X-ZTP-Identity": ident, "X-ZTP-Key-Tag": tag})
            if n == N // 2:  # progress half way
                half = admin.request("GET", f"/v1/rotations/batches/{batch}").json()
                assert half["done"] == N // 2 and half["states"]["delivered"] == N - N // 2
        progress = admin.request("GET", f"/v1/rotations/batches/{batch}").json()
        assert progress["complete"] and progress["done"] == N and progress["overdue"] == 0
        one = iccid_to_hex(next(iter(sims.sims)))
        keys = gw.get(f"/v1/gateway/psks/{one}", headers=auth).json()["keys"]
        assert [k["tag"] for k in keys] == ["2"]
