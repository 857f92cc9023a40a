"""The gateway in front of the real ztp.service (SQLite) on uvicorn."""

from __future__ import annotations

import asyncio

from ztp.gateway import Gateway, GatewayMetrics, ServiceClient
from ztp.iccid import build_ef_iccid
from ztp.service import MasterKeyring, Settings, bootstrap_credentials, create_app
from ztp.service import ServiceClient as AdminClient
from ztp.tls import AlertDescription

from .harness import engine_fetch
from .service_app import serve_app
from .test_gateway import fast_config

ICCID = "8944502509186389635"
OTHER_ICCID = "8944502509186389643"
IDENTITY = build_ef_iccid(ICCID)
PSK = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
DEVICE = "00112233445566778899aabbccddeeff"
BODY = '{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'


def get(iccid_hex: str) -> bytes:
    return f"GET /v1/config/{DEVICE}?iccid={iccid_hex} HTTP/1.1\r\n\r\n".encode()


def test_real_service_fetch_mismatch_audit_and_revocation(tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'ztp.db'}",
        master_key=MasterKeyring.generate(),
        fast_hashing=True,
    )
    creds = bootstrap_credentials(settings)
    app = create_app(settings)

    async def main():
        async with serve_app(app) as url:
            admin = AdminClient(url)
            await asyncio.to_thread(admin.login, creds.admin_id, creds.admin_secret)
            await asyncio.to_thread(admin.create_sim, ICCID, psk=PSK, tag="1")
            await asyncio.to_thread(admin.set_config, ICCID, DEVICE, BODY)
            # the gateway logs in with its client credentials (and again when a token expires)
            service = ServiceClient(
                url, None, "gw-real", credentials=(creds.gateway_id, creds.gateway_secret)
            )
            gw = Gateway(service, fast_config(), metrics=GatewayMetrics())
            _, port = await gw.start("127.0.0.1", 0)
            try:
                got = await engine_fetch(port, IDENTITY, PSK, get(IDENTITY.hex()))
                assert got.status == 200, got.data
                assert got.body == BODY.encode()
                assert got.closed_clean is True

                got = await engine_fetch(
                    port, IDENTITY, PSK, get(build_ef_iccid(OTHER_ICCID).hex())
                )
                assert got.status == 403
                events = await asyncio.to_thread(admin.audit)
                kinds = [e.get("kind") or e.get("action") for e in events]
                assert any("iccid_mismatch" in str(k) for k in kinds), events
                # the gateway column names the gateway, the actor its credential (issue 13)
                for e in events:
                    if e["action"] in ("gateway.iccid_mismatch", "psk.lookup", "config.deliver"):
                        assert (e["gateway"], e["actor"]) == ("gw-real", creds.gateway_id), e
                        assert "gateway" not in e["detail"], e
                [mismatch] = [e for e in events if e["action"] == "gateway.iccid_mismatch"]
                assert mismatch["detail"]["requested_iccid"] == build_ef_iccid(OTHER_ICCID).hex()

                # suspend the SIM: the change feed drops the cached key, handshakes fail
                await asyncio.to_thread(admin.suspend_sim, ICCID)
                after = await service.psk_changes(0)
                for _ in range(100):
                    if gw.watcher.after is not None and gw.watcher.after >= after[0]:
                        break
                    await asyncio.sleep(0.05)
                got = await engine_fetch(port, IDENTITY, PSK, get(IDENTITY.hex()))
                assert got.alert_received == AlertDescription.DECRYPT_ERROR
            finally:
                await gw.close()
                await service.aclose()
                admin.close()

    asyncio.run(main())
