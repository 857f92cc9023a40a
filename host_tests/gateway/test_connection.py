"""GatewayConnection (the asyncio adapter) against a scripted transport: what it does when the
client stops reading, and that one timer stands for the session's deadlines."""

from __future__ import annotations

import asyncio
import socket

import pytest
from ztp.gateway import Gateway, GatewayConfig, GatewayMetrics, ServiceClient, SessionLimits


class FakeTransport(asyncio.Transport):
    """Records what the adapter asks of the socket."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.written = bytearray()
        self.buffered = buffered  # bytes the client has not taken yet
        self.closed = self.aborted = self.paused = False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data) -> None:
        self.written += data

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def _gateway(**kw) -> Gateway:
    config = GatewayConfig(name="gw-test", **kw)
    service = ServiceClient("http://127.0.0.1:9", "t", config.name)  # never called here
    return Gateway(service, config, metrics=GatewayMetrics())


def test_client_not_reading_our_answer_is_cut_off_after_the_write_timeout():
    async def main():
        gw = _gateway(write_timeout_s=0.05)
        conn = gw._new_connection()
        transport = FakeTransport(buffered=100_000)
        conn.connection_made(transport)
        assert gw.active == 1
        conn.pause_writing()  # the socket's buffer is full: the client does not read
        async with asyncio.timeout(5):
            await conn.done
        assert transport.aborted  # unsent bytes are dropped, not waited for
        assert gw.active == 0
        m = gw.metrics.registry.get_sample_value
        assert m("ztp_gateway_timeouts_total", {"phase": "write"}) == 1
        await gw.service.aclose()

    asyncio.run(main())


def test_client_reading_again_is_not_cut_off():
    async def main():
        gw = _gateway(write_timeout_s=0.05)
        conn = gw._new_connection()
        transport = FakeTransport()
        conn.connection_made(transport)
        conn.pause_writing()
        conn.resume_writing()
        await asyncio.sleep(0.15)
        assert not transport.is_closing() and gw.active == 1
        conn.connection_lost(None)
        assert gw.active == 0
        await gw.service.aclose()

    asyncio.run(main())


def test_silent_client_cut_off_by_the_one_timer():
    async def main():
        limits = SessionLimits(handshake_timeout_s=0.1, idle_timeout_s=0.05)
        gw = _gateway(session=limits, linger_s=0.1)
        conn = gw._new_connection()
        transport = FakeTransport()
        conn.connection_made(transport)
        await asyncio.sleep(0.03)
        conn.data_received(b"\x16\x03\x01")  # three bytes of a ClientHello: idle moves on
        async with asyncio.timeout(5):
            while not transport.is_closing():
                await asyncio.sleep(0.01)
        assert transport.closed and not transport.aborted
        m = gw.metrics.registry.get_sample_value
        assert m("ztp_gateway_timeouts_total", {"phase": "EXPECT_CLIENT_HELLO"}) == 1
        conn.connection_lost(None)
        assert gw.active == 0
        await gw.service.aclose()

    asyncio.run(main())


class GoneTransport(FakeTransport):
    """The client reset the connection: half-closing our side fails as the socket does."""

    def write_eof(self) -> None:
        raise OSError(107, "Transport endpoint is not connected")


def test_client_gone_before_our_half_close_is_a_plain_close(caplog):
    # a SIM that closes its link right after our last record is normal on a cellular bearer:
    # the connection ends quietly, not as a "connection_failed" error with a traceback
    async def main():
        limits = SessionLimits(handshake_timeout_s=0.05, idle_timeout_s=0.05)
        gw = _gateway(session=limits, linger_s=1.0)
        conn = gw._new_connection()
        transport = GoneTransport()
        conn.connection_made(transport)
        async with asyncio.timeout(5):
            while not transport.is_closing():
                await asyncio.sleep(0.01)
        assert transport.closed and not transport.aborted
        conn.connection_lost(None)
        assert gw.active == 0
        await gw.service.aclose()

    with caplog.at_level("INFO", logger="ztp.gateway"):
        asyncio.run(main())
    assert not [r for r in caplog.records if r.getMessage() == "connection_failed"]


def test_bytes_read_while_waiting_on_the_service_are_bounded():
    # reading goes on during a wait (no epoll change per exchange), but a client that keeps
    # sending gets reading paused at _WAIT_MAX_BYTES, resumed when the wait ends
    async def main():
        gw = _gateway()
        conn = gw._new_connection()
        transport = FakeTransport()
        conn.connection_made(transport)
        answered = asyncio.Event()

        async def service_call() -> None:
            await answered.wait()

        conn._wait(service_call())
        conn.data_received(b"\x16" * 1000)
        assert not transport.paused  # a few bytes: kept for after the wait
        for _ in range(70):
            conn.data_received(b"\x16" * 1000)
        assert transport.paused  # past 64 KiB: the kernel holds the rest, not us
        answered.set()
        async with asyncio.timeout(5):
            while transport.paused:
                await asyncio.sleep(0.01)
        conn.cut_off()
        await gw.service.aclose()

    asyncio.run(main())


def test_cut_off_before_the_wait_started_closes_its_coroutine():
    # no "coroutine was never awaited" from a connection evicted in the same loop turn
    async def main():
        gw = _gateway()
        conn = gw._new_connection()
        transport = FakeTransport()
        conn.connection_made(transport)

        async def service_call() -> None:
            raise AssertionError("never runs")

        coro = service_call()
        conn._wait(coro)
        conn.cut_off()
        assert coro.cr_frame is None  # closed
        assert transport.closed and gw.active == 0
        await asyncio.sleep(0)
        await gw.service.aclose()

    asyncio.run(main())


def test_a_wait_that_fails_cuts_the_connection_off(caplog):
    async def main():
        gw = _gateway()
        conn = gw._new_connection()
        transport = FakeTransport()
        conn.connection_made(transport)

        async def service_call() -> None:
            raise ValueError("a bug")

        conn._wait(service_call())
        async with asyncio.timeout(5):
            await conn.done
        assert transport.closed and gw.active == 0
        await gw.service.aclose()

    with caplog.at_level("ERROR", logger="ztp.gateway"):
        asyncio.run(main())
    assert any(r.message == "connection_failed" and r.exc_info for r in caplog.records)


class FakeSocket:
    family = socket.AF_INET

    def __init__(self) -> None:
        self.options: dict[tuple[int, int], int] = {}

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options[(level, option)] = value


class SocketTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sock = FakeSocket()

    def get_extra_info(self, name, default=None):
        return self.sock if name == "socket" else super().get_extra_info(name, default)


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="Linux only")
def test_last_bytes_wait_for_the_fin_only_when_we_half_close():
    # TCP_CORK: the answer and the FIN of write_eof leave in one segment
    async def main():
        gw = _gateway(linger_s=1.0)
        conn = gw._new_connection()
        transport = SocketTransport()
        conn.connection_made(transport)
        assert conn._will_half_close()
        conn._cork()
        assert transport.sock.options == {(socket.IPPROTO_TCP, socket.TCP_CORK): 1}
        conn.eof_received()  # the client half-closed first: we close, nothing to cork for
        assert not conn._will_half_close()
        conn.cut_off()
        await gw.service.aclose()

    asyncio.run(main())
