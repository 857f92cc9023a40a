"""ztp.gateway._service against a real HTTP server (uvicorn) speaking the gateway API."""

import asyncio

import pytest
from ztp.gateway import ForwardRequest, PskKey, ServiceClient, ServiceError

from .service_app import ServiceState, make_app, serve_app

ID = bytes.fromhex("984405529081369836f5")
PSK = bytes.fromhex("000102030405060708090a0b0c0d0e0f")


def test_lookup_changes_events_forward():
    async def main():
        state = ServiceState(token="gw-token")
        state.set_keys(ID, [("1", PSK)])
        state.configs[(ID, "00aa")] = b'{"configuration":{}}'
        async with serve_app(make_app(state)) as url:
            client = ServiceClient(url, "gw-token", "gw-test")
            try:
                assert await client.get_psks(ID) == (PskKey("1", PSK),)
                assert await client.get_psks(bytes(10)) is None
                assert await client.psk_changes(0) == (1, (ID,))
                assert await client.psk_changes(1) == (1, ())
                await client.post_event("iccid_mismatch", ID, {"requested_iccid": "00" * 10})
                assert state.events == [
                    {
                        "kind": "iccid_mismatch",
                        "identity": ID.hex(),
                        "detail": {"requested_iccid": "00" * 10},
                        "gateway_header": "gw-test",  # the audit row's gateway column
                    }
                ]
                fwd = ForwardRequest("GET", f"/v1/config/00aa?iccid={ID.hex()}", "00aa", ID.hex())
                resp = await client.forward(fwd, ID, "1")
                assert (resp.status, resp.body) == (200, b'{"configuration":{}}')
                assert resp.content_type == "application/octet-stream"
                assert state.forwarded[-1] == {
                    "method": "GET",
                    "path": "/v1/config/00aa",
                    "identity": ID.hex(),
                    "tag": "1",
                    "gateway": "gw-test",
                }
                missing = ForwardRequest(
                    "GET", f"/v1/config/00bb?iccid={ID.hex()}", "00bb", ID.hex()
                )
                assert (await client.forward(missing, ID, "1")).status == 404
            finally:
                await client.aclose()
            bad = ServiceClient(url, "wrong", "gw-test")
            try:
                with pytest.raises(ServiceError, match="expected 200 or 404, got 401"):
                    await bad.get_psks(ID)
                with pytest.raises(ServiceError, match="service answered 401") as exc:
                    await bad.forward(fwd, ID, "1")
                assert exc.value.status == 502
            finally:
                await bad.aclose()

    asyncio.run(main())


def test_unreachable_service_is_502():
    async def main():
        client = ServiceClient("http://127.0.0.1:9", "t", "gw")
        try:
            with pytest.raises(ServiceError) as exc:
                await client.get_psks(ID)
            assert exc.value.status == 502
        finally:
            await client.aclose()

    asyncio.run(main())
