"""A batch of 1000 SIMs rotated with progress and no failures (in-process SIMs: the service
sends each SMS-PP download straight into its card). The confirmation is what a gateway does:
a TLS 1.3 psk_ke handshake (the engine, in memory) between the card's key and the candidate
keys the service hands the gateway, then the device request forwarded with the tag of the key
whose binder verified."""

from __future__ import annotations

import os

from starlette.testclient import TestClient
from ztp.iccid import iccid_to_hex, luhn_check_digit
from ztp.service import ServiceClient as AdminClient
from ztp.service import bootstrap_credentials, create_app
from ztp.tls import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    HandshakeComplete,
    KeyExchangeMode,
    PskCandidate,
    ServerConfig,
    ServerConnection,
)

from .harness import DEVICE, FakeClock, InProcessSims, card, make_settings

N = 1000


def iccids(n: int) -> list[str]:
    out = []
    for i in range(n):
        payload = f"894450250918{i:06d}"
        out.append(payload + luhn_check_digit(payload))
    return out


def verified_key_tag(identity: bytes, card_psk: bytes, candidates: list[PskCandidate]) -> str:
    """The SIM's handshake (psk_ke, no key_share) against a server holding the gateway's
    candidates: the tag of the key the binder picked."""
    client = ClientConnection(ClientConfig(identity, card_psk, server_name="gw.example",
                                           key_exchange_modes=(KeyExchangeMode.PSK_KE,)))
    server = ServerConnection(ServerConfig(psk_lookup=lambda ident: candidates
                                           if ident == identity else []))
    client.start_handshake()
    server.receive_data(client.data_to_send())  # ClientHello
    assert server.next_event() is NEED_DATA
    client.receive_data(server.data_to_send())  # ServerHello ... Finished
    assert isinstance(client.next_event(), HandshakeComplete)
    server.receive_data(client.data_to_send())  # client Finished
    done = server.next_event()
    assert isinstance(done, HandshakeComplete)
    assert done.identity == identity
    return done.psk_tag


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
            keys = gw.get(f"/v1/gateway/psks/{ident}", headers=auth).json()["keys"]
            assert {k["tag"]: k["psk"] for k in keys}["1"] == rows[n - 1]["psk"]
            candidates = [PskCandidate(bytes.fromhex(k["psk"]), k["tag"]) for k in keys]
            tag = verified_key_tag(bytes.fromhex(ident), sim.state.psk, candidates)
            assert tag == "2"  # the card holds the new key, and the gateway would know it
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
