"""Loopback harness: a service (stub app or ztp.service) on uvicorn, a Gateway, and clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ztp.gateway import Gateway, GatewayConfig, GatewayMetrics, ServiceClient
from ztp.tls import (
    NEED_DATA,
    Alert,
    AlertReceived,
    ApplicationData,
    ClientConfig,
    ClientConnection,
    ConnectionClosed,
    HandshakeComplete,
)

from .service_app import ServiceState, make_app, serve_app

TOKEN = "gateway-test-token"


@contextlib.asynccontextmanager
async def stub_service(state: ServiceState) -> AsyncIterator[str]:
    async with serve_app(make_app(state)) as url:
        yield url


@contextlib.asynccontextmanager
async def running_gateway(
    url: str, config: GatewayConfig, token: str = TOKEN, port: int = 0
) -> AsyncIterator[tuple[Gateway, int]]:
    gw = Gateway(ServiceClient(url, token, config.name), config, metrics=GatewayMetrics())
    _, bound = await gw.start("127.0.0.1", port)
    try:
        yield gw, bound
    finally:
        await gw.close()
        await gw.service.aclose()


@dataclass
class Fetch:
    """What a client saw: raw bytes from the server, decrypted data, events, errors."""

    wire_in: bytearray = field(default_factory=bytearray)
    data: bytearray = field(default_factory=bytearray)
    handshake: HandshakeComplete | None = None
    alert_received: int | None = None
    closed_clean: bool | None = None
    local_alert: Alert | None = None
    reset: bool = False

    @property
    def status(self) -> int | None:
        if not self.data.startswith(b"HTTP/1.1 "):
            return None
        return int(self.data[9:12])

    @property
    def headers(self) -> bytes:
        return bytes(self.data).partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return bytes(self.data).partition(b"\r\n\r\n")[2]


async def handshaken(port: int, identity: bytes, psk: bytes):
    """A client that completed the handshake over loopback and sent nothing else.
    Returns (reader, writer, client)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = ClientConnection(ClientConfig(identity=identity, psk=psk))
    client.start_handshake()
    writer.write(client.data_to_send())
    async with asyncio.timeout(10):
        while not isinstance(ev := client.next_event(), HandshakeComplete):
            assert not isinstance(ev, ConnectionClosed), ev  # closed: never NEED_DATA again
            writer.write(client.data_to_send())
            if ev is NEED_DATA:
                client.receive_data(await reader.read(4096))
    writer.write(client.data_to_send())
    return reader, writer, client


async def engine_fetch(
    port: int,
    identity: bytes,
    psk: bytes,
    request: bytes | None,
    *,
    timeout: float = 10.0,
    source: str | None = None,
    **client_kw,
) -> Fetch:
    """One provisioning exchange with the engine's client, as a SIM does it (from the loopback
    address ``source``, e.g. ``127.0.0.2``, when given)."""
    out = Fetch()
    local = (source, 0) if source is not None else None
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
    client = ClientConnection(ClientConfig(identity=identity, psk=psk, **client_kw))
    client.start_handshake()
    writer.write(client.data_to_send())
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    ev = client.next_event()
                except Alert as exc:
                    out.local_alert = exc
                    writer.write(client.data_to_send())
                    break
                writer.write(client.data_to_send())
                if ev is NEED_DATA:
                    try:
                        chunk = await reader.read(4096)
                    except ConnectionResetError:
                        out.reset = True
                        chunk = b""
                    out.wire_in += chunk
                    client.receive_data(chunk)
                elif isinstance(ev, HandshakeComplete):
                    out.handshake = ev
                    if request is not None:
                        client.send_application_data(request)
                        writer.write(client.data_to_send())
                elif isinstance(ev, ApplicationData):
                    out.data += ev.data
                elif isinstance(ev, AlertReceived):
                    out.alert_received = ev.description
                elif isinstance(ev, ConnectionClosed):
                    out.closed_clean = ev.clean
                    break
    finally:
        writer.close()
        with contextlib.suppress(OSError):  # includes a reset by the gateway
            await writer.wait_closed()
    return out
