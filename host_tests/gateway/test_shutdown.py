"""Graceful shutdown, the connection cap, and how failures are counted in the metrics."""

from __future__ import annotations

import asyncio

import pytest
from ztp.gateway import Gateway, GatewayConfig, GatewayMetrics, ServiceClient, SessionLimits
from ztp.tls import (
    AlertDescription,
    ClientConfig,
    ClientConnection,
)
from ztp.tls._alerts import AlertLevel

from .harness import TOKEN, engine_fetch, handshaken, running_gateway, stub_service
from .test_gateway import CONFIG, IDENTITY, PSK, fast_config, get, make_state


def run(coro):
    return asyncio.run(coro)


async def settle(gw: Gateway, active: int = 0) -> None:
    """Wait until the gateway serves ``active`` connections (its handlers have finished)."""
    async with asyncio.timeout(10):
        while gw.active != active:
            await asyncio.sleep(0.01)


async def until_eof(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(10):
        return await reader.read()


# -- graceful shutdown ------------------------------------------------------------------------


def test_close_lets_the_exchange_in_flight_finish_then_port_serves_again():
    async def main():
        state = make_state()
        state.config_delay_s = 0.5  # the service is slow: close() comes while it answers
        async with stub_service(state) as url:
            gw = Gateway(
                ServiceClient(url, TOKEN, "gw-test"),
                fast_config(shutdown_grace_s=10),
                metrics=GatewayMetrics(),
            )
            _, port = await gw.start("127.0.0.1", 0)
            try:
                fetch = asyncio.create_task(engine_fetch(port, IDENTITY, PSK, get()))
                # handshake done, request read and forwarded, the service still working
                await asyncio.wait_for(state.config_started.wait(), 10)
                closing = asyncio.create_task(gw.close())
                await asyncio.sleep(0.05)
                assert not closing.done()  # it waits for the connection in flight
                with pytest.raises(ConnectionRefusedError):  # ...but accepts nothing new
                    await asyncio.open_connection("127.0.0.1", port)
                got = await fetch
                assert got.status == 200 and got.body == CONFIG
                assert got.closed_clean is True  # the answer and close_notify both arrived
                await asyncio.wait_for(closing, 10)
                m = gw.metrics.registry.get_sample_value
                assert m("ztp_gateway_requests_total", {"status": "200"}) == 1
                await gw.close()  # idempotent
            finally:
                await gw.service.aclose()
            state.config_delay_s = 0
            async with running_gateway(url, fast_config(), port=port) as (_, port2):
                assert port2 == port
                got = await engine_fetch(port, IDENTITY, PSK, get())
                assert (got.status, got.body, got.closed_clean) == (200, CONFIG, True)

    run(main())


def test_close_cuts_off_what_outlives_the_grace_period():
    async def main():
        state = make_state()
        session = SessionLimits(handshake_timeout_s=60, idle_timeout_s=60, request_timeout_s=60)
        async with stub_service(state) as url:
            for how in ("grace", "cut_off"):
                cfg = fast_config(session=session, shutdown_grace_s=0.2 if how == "grace" else 60)
                async with running_gateway(url, cfg) as (gw, port):
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)  # silent
                    await settle(gw, 1)
                    closing = asyncio.create_task(gw.close())
                    if how == "cut_off":  # e.g. a second SIGTERM
                        await asyncio.sleep(0.05)
                        assert not closing.done()
                        gw.cut_off()
                    await asyncio.wait_for(closing, 5)  # long before the 60 s deadlines
                    assert await until_eof(reader) == b""
                    assert gw.active == 0
                    writer.close()

    run(main())


def test_max_connections():
    async def main():
        state = make_state()
        async with stub_service(state) as url:
            async with running_gateway(url, fast_config(max_connections=2)) as (gw, port):
                held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
                await settle(gw, 2)
                refused = await engine_fetch(port, IDENTITY, PSK, get())
                assert refused.handshake is None and refused.wire_in == b""
                m = gw.metrics.registry.get_sample_value
                assert m("ztp_gateway_connections_rejected_total", {"reason": "max_connections"})
                assert m("ztp_gateway_connections_active") == 2
                # a slot frees up when a connection ends: served again
                held[0][1].close()
                await settle(gw, 1)
                got = await engine_fetch(port, IDENTITY, PSK, get())
                assert got.status == 200
                assert m("ztp_gateway_connections_rejected_total", {"reason": "max_connections"})
                assert m("ztp_gateway_connections_total") == 4
                held[1][1].close()

    run(main())


# -- failures in the metrics ------------------------------------------------------------------


def test_received_alert_counted_by_name_during_handshake():
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            client = ClientConnection(ClientConfig(identity=IDENTITY, psk=PSK))
            client.start_handshake()
            writer.write(client.data_to_send())
            assert await asyncio.wait_for(reader.read(4096), 10)  # the server's flight
            # a client refusing the ServerHello answers with a clear handshake_failure alert
            writer.write(bytes.fromhex("15030300020228"))
            await until_eof(reader)
            writer.close()
            await settle(gw)
            m = gw.metrics.registry.get_sample_value
            assert m("ztp_gateway_handshake_failures_total", {"alert": "handshake_failure"}) == 1
            assert m("ztp_gateway_handshake_failures_total", {"alert": "40"}) is None

    run(main())


def test_failures_after_the_handshake_are_counted():
    async def main():
        state = make_state()
        async with stub_service(state) as url, running_gateway(url, fast_config()) as (gw, port):
            # a fatal alert from the verified client instead of a request
            reader, writer, client = await handshaken(port, IDENTITY, PSK)
            client._send_alert(AlertLevel.FATAL, AlertDescription.INTERNAL_ERROR)
            writer.write(client.data_to_send())
            await until_eof(reader)
            writer.close()
            # TCP closed without a request
            reader, writer, client = await handshaken(port, IDENTITY, PSK)
            await settle(gw, 1)
            writer.close()
            await settle(gw)
            # close_notify without a request
            reader, writer, client = await handshaken(port, IDENTITY, PSK)
            client.close()
            writer.write(client.data_to_send())
            await until_eof(reader)
            writer.close()
            await settle(gw)
            m = gw.metrics.registry.get_sample_value
            for reason in ("internal_error", "eof", "peer_closed"):
                assert m("ztp_gateway_session_failures_total", {"reason": reason}) == 1, reason
            assert (
                m(
                    "ztp_gateway_handshakes_total",
                    {"mode": "psk_ke", "suite": ("TLS_AES_128_CCM_SHA256")},
                )
                == 3
            )
            for alert in ("internal_error", "eof", "peer_closed"):
                assert m("ztp_gateway_handshake_failures_total", {"alert": alert}) is None

    run(main())


def test_shutdown_grace_validated():
    with pytest.raises(ValueError):
        GatewayConfig(shutdown_grace_s=-1)
