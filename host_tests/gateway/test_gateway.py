"""The gateway end to end on loopback: engine client -> Gateway -> service on uvicorn."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from ztp.gateway import GatewayConfig, JsonFormatter, RateLimit, SessionLimits
from ztp.iccid import build_ef_iccid
from ztp.tls import AlertDescription

from .harness import TOKEN, engine_fetch, handshaken, running_gateway, stub_service
from .service_app import ServiceState

IDENTITY = build_ef_iccid("8944502509186389635")  # 98 44 05 52 90 81 36 98 36 F5
OTHER = build_ef_iccid("8944502509186389643")
PSK = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
WRONG_PSK = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
DEVICE = "00112233445566778899aabbccddeeff"
CONFIG = (
    b'{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'
)


def get(identity_hex: str = IDENTITY.hex(), device: str = DEVICE) -> bytes:
    return f"GET /v1/config/{device}?iccid={identity_hex} HTTP/1.1\r\n\r\n".encode()


def fast_config(**kw) -> GatewayConfig:
    session = kw.pop(
        "session", SessionLimits(handshake_timeout_s=5, idle_timeout_s=5, request_timeout_s=5)
    )
    return GatewayConfig(
        name="gw-test", session=session, linger_s=0.2, psk_poll_interval_s=0.05, **kw
    )


def make_state() -> ServiceState:
    state = ServiceState(token=TOKEN)
    state.set_keys(IDENTITY, [("1", PSK)])
    state.set_keys(OTHER, [("1", WRONG_PSK)])
    state.configs[(IDENTITY, DEVICE)] = CONFIG
    return state


def run(coro):
    return asyncio.run(coro)


def test_config_fetched_with_engine_client():
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            got = await engine_fetch(port, IDENTITY, PSK, get(), server_name="ztp.example")
            assert got.handshake is not None
            assert got.status == 200
            assert b"\r\nContent-Length: %d\r\n" % len(CONFIG) in got.headers
            assert b"\r\nConnection: close" in got.headers
            assert got.body == CONFIG
            assert got.closed_clean is True  # close_notify after the answer
            assert state.forwarded == [
                {
                    "method": "GET",
                    "path": f"/v1/config/{DEVICE}",
                    "identity": IDENTITY.hex(),
                    "tag": "1",
                    "gateway": "gw-test",
                }
            ]
            # missing config: the service's 404 relayed
            got = await engine_fetch(port, IDENTITY, PSK, get(device="0a0b"))
            assert got.status == 404
            m = gw.metrics.registry.get_sample_value
            assert (
                m(
                    "ztp_gateway_handshakes_total",
                    {"mode": "psk_ke", "suite": "TLS_AES_128_CCM_SHA256"},
                )
                == 2
            )
            assert m("ztp_gateway_requests_total", {"status": "200"}) == 1
            assert m("ztp_gateway_requests_total", {"status": "404"}) == 1
            assert m("ztp_gateway_psk_lookups_total", {"result": "hit"}) == 1

    run(main())


def test_psk_dhe_ke_gcm_and_post():
    from ztp.tls import CipherSuite, KeyExchangeMode

    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            body = b'{"t":21.5}'
            req = (
                f"POST /v1/data/{DEVICE}?iccid={IDENTITY.hex()} HTTP/1.1\r\nHost: gw\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            got = await engine_fetch(
                port,
                IDENTITY,
                PSK,
                req,
                cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
                key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,),
                send_key_share=True,
            )
            assert got.status == 204
            assert got.handshake.key_exchange_mode is KeyExchangeMode.PSK_DHE_KE
            assert state.forwarded[-1]["method"] == "POST"

    run(main())


def test_unknown_identity_and_wrong_psk_rejected_alike():
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            unknown = await engine_fetch(port, build_ef_iccid("8944502509186389650"), PSK, get())
            wrong = await engine_fetch(port, IDENTITY, WRONG_PSK, get())
            for got in (unknown, wrong):
                assert got.handshake is None
                assert got.alert_received == AlertDescription.DECRYPT_ERROR
            # identical bytes on the wire: one plaintext decrypt_error alert record
            assert bytes(unknown.wire_in) == bytes(wrong.wire_in) == bytes.fromhex("15030300020233")
            assert state.forwarded == []
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_handshake_failures_total", {"alert": "decrypt_error"}) == 2

    run(main())


def test_iccid_mismatch_is_403_and_audited():
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            got = await engine_fetch(port, IDENTITY, PSK, get(identity_hex=OTHER.hex()))
            assert got.status == 403
            assert got.closed_clean is True
            assert state.forwarded == []
            assert len(state.events) == 1
            ev = state.events[0]
            assert ev["kind"] == "iccid_mismatch"
            assert ev["identity"] == IDENTITY.hex()
            assert ev["detail"]["requested_iccid"] == OTHER.hex()
            # the gateway's name travels as X-ZTP-Gateway (the audit row's gateway column),
            # not inside the detail (issue 13 item 7)
            assert ev["gateway_header"] == "gw-test"
            assert "gateway" not in ev["detail"]

    run(main())


def test_iccid_mismatch_past_the_rate_limit_is_still_audited():
    # issue 13 item 5: it was answered 429 and never audited
    async def main():
        state = make_state()
        cfg = fast_config(identity_rate=RateLimit(per_second=1 / 3600, burst=1))
        async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
            assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
            assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 429  # limit
            for _ in range(3):
                got = await engine_fetch(port, IDENTITY, PSK, get(identity_hex=OTHER.hex()))
                assert got.status == 403
            assert len(state.forwarded) == 1
            assert [e["kind"] for e in state.events] == ["iccid_mismatch"] * 3
            for ev in state.events:
                assert ev["identity"] == IDENTITY.hex()
                assert ev["detail"]["requested_iccid"] == OTHER.hex()
                assert ev["detail"]["rate_limited"] is True
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_rate_limited_total") == 4

    run(main())


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/config/00?iccid=" + b"0" * 3000 + b" HTTP/1.1\r\n\r\n", 414),
        (
            b"POST /v1/data/00?iccid=984405529081369836f5 HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"
            + b"x" * 5000,
            413,
        ),
        (
            b"GET /v1/config/00 HTTP/1.1\r\n"
            + b"X-Pad: "
            + b"a" * 100
            + b"\r\n" * 1
            + b"Y: "
            + b"b" * 8000
            + b"\r\n\r\n",
            431,
        ),
        (b"GET /admin HTTP/1.1\r\n\r\n", 404),
    ],
)
def test_oversized_or_bad_request_cut_off(request_bytes, status):
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            got = await engine_fetch(port, IDENTITY, PSK, request_bytes)
            assert got.status == status
            assert state.forwarded == []

    run(main())


async def _raw_until_closed(port: int, send: list[tuple[float, bytes]]) -> bytes:
    """Write the chunks (after the given pauses), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for pause, chunk in send:
            await asyncio.sleep(pause)  # the client's own behaviour, not a timing assertion
            if reader.at_eof():
                break
            writer.write(chunk)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def test_silent_client_cut_off():
    async def main():
        state = make_state()
        cfg = fast_config(
            session=SessionLimits(handshake_timeout_s=0.2, idle_timeout_s=5, request_timeout_s=5)
        )
        async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
            assert await _raw_until_closed(port, []) == b""
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_timeouts_total", {"phase": "EXPECT_CLIENT_HELLO"}) == 1
            assert m("ztp_gateway_handshake_failures_total", {"alert": "timeout"}) == 1

    run(main())


def test_slow_client_cut_off_after_handshake():
    async def main():
        state = make_state()
        cfg = fast_config(
            session=SessionLimits(handshake_timeout_s=5, idle_timeout_s=5, request_timeout_s=0.3)
        )
        async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
            # a client that completes the handshake and then trickles its request
            from ztp.tls import NEED_DATA

            reader, writer, client = await handshaken(port, IDENTITY, PSK)
            answer = b""
            for byte in get():
                client.send_application_data(bytes([byte]))
                writer.write(client.data_to_send())
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 0.05)
                except TimeoutError:
                    continue
                answer = chunk + await asyncio.wait_for(reader.read(), 5)
                break
            writer.close()
            client.receive_data(answer)
            data = b""
            while (ev := client.next_event()) is not NEED_DATA:
                data += getattr(ev, "data", b"")
                if not hasattr(ev, "data"):
                    break
            assert data.startswith(b"HTTP/1.1 408 ")
            assert state.forwarded == []
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_timeouts_total", {"phase": "EXPECT_REQUEST"}) == 1

    run(main())


def test_rate_limit_holds_for_verified_sim_only():
    async def main():
        state = make_state()
        cfg = fast_config(identity_rate=RateLimit(per_second=1 / 3600, burst=2))
        async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
            # an attacker knows the victim's ICCID (it travels in clear) but not its key
            for _ in range(10):
                got = await engine_fetch(port, IDENTITY, WRONG_PSK, get())
                assert got.alert_received == AlertDescription.DECRYPT_ERROR
            # ...which did not touch the victim's quota
            assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
            assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
            limited = await engine_fetch(port, IDENTITY, PSK, get())
            assert limited.status == 429
            assert b"\r\nRetry-After: " in limited.headers
            assert len(state.forwarded) == 2
            assert gw.metrics.registry.get_sample_value("ztp_gateway_rate_limited_total") == 1

    run(main())


def test_per_address_and_max_connections():
    async def main():
        state = make_state()
        cfg = fast_config(address_rate=RateLimit(per_second=1 / 3600, burst=1))
        async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
            assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
            refused = await engine_fetch(port, IDENTITY, PSK, get())
            assert refused.handshake is None and refused.wire_in == b""
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_connections_rejected_total", {"reason": "address_rate"}) == 1

    run(main())


def test_gateway_restart_and_key_rotation_lose_nothing():
    async def main():
        state = make_state()
        async with stub_service(state) as url:
            async with running_gateway(url, fast_config()) as (gw, port):
                assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
            # the gateway is down; meanwhile the SIM's key is rotated (old key kept as candidate)
            new_psk = bytes(range(100, 116))
            state.set_keys(IDENTITY, [("2", new_psk), ("1", PSK)])
            async with running_gateway(url, fast_config(), port=port) as (gw, port2):
                assert port2 == port
                got = await engine_fetch(port, IDENTITY, new_psk, get())
                assert got.status == 200 and got.body == CONFIG
                assert state.forwarded[-1]["tag"] == "2"
                # the old key is revoked while this gateway runs: the change feed drops it
                assert (await engine_fetch(port, IDENTITY, PSK, get())).status == 200
                state.set_keys(IDENTITY, [("2", new_psk)])
                for _ in range(100):
                    if gw.watcher.after == len(state.changes):
                        break
                    await asyncio.sleep(0.05)
                got = await engine_fetch(port, IDENTITY, PSK, get())
                assert got.alert_received == AlertDescription.DECRYPT_ERROR
            assert [f["tag"] for f in state.forwarded] == ["1", "2", "1"]

    run(main())


def test_no_secret_in_logs():
    async def main():
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger("ztp")
        old_level = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            state = make_state()
            async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, p):
                await engine_fetch(p, IDENTITY, PSK, get())
                await engine_fetch(p, IDENTITY, WRONG_PSK, get())
                await engine_fetch(p, IDENTITY, PSK, get(identity_hex=OTHER.hex()))
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
        text = stream.getvalue()
        assert IDENTITY.hex() in text  # identities are logged, as hex
        assert '"event": "handshake_complete"' in text
        for secret in (PSK, WRONG_PSK):
            for form in (secret.hex(), secret.hex().upper(), repr(secret)):
                assert form not in text
        assert TOKEN not in text
        assert CONFIG.decode() not in text

    run(main())


def test_hello_retry_request_through_the_gateway():
    # issue 13 item 7: a client offering psk_dhe_ke only, with x25519 listed but no share,
    # gets a HelloRetryRequest and then its configuration (was: handshake_failure)
    from ztp.tls import KeyExchangeMode

    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            got = await engine_fetch(
                port,
                IDENTITY,
                PSK,
                get(),
                key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,),
                empty_key_share=True,
            )
            assert got.status == 200 and got.body == CONFIG
            assert got.handshake.key_exchange_mode is KeyExchangeMode.PSK_DHE_KE
            assert bytes(got.wire_in).startswith(bytes.fromhex("16030300"))  # the HRR record

    run(main())
