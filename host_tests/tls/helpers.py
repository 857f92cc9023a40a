"""Shared helpers: deterministic RNG, client/server pairs, the SAFE2 example identity."""

from __future__ import annotations

import hashlib

from ztp.tls import (
    NEED_DATA,
    ClientConfig,
    ClientConnection,
    PskCandidate,
    ServerConfig,
    ServerConnection,
)

# SAFE2-PROTOCOL.md: ICCID 8944502509186389635 <-> EF_ICCID bytes (0x98 first)
IDENTITY = bytes.fromhex("984405529081369836f5")
# binary identity with 0x00 and 0x98 (interop requirement)
BINARY_IDENTITY = bytes.fromhex("9800440552908136f500")
PSK = bytes.fromhex("00112233445566778899aabbccddeeff")


class CountingRng:
    """Deterministic rng(n): SHA-256 counter stream, so runs replay byte for byte."""

    def __init__(self, seed: bytes = b"seed") -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        return out[:n]


def lookup_for(table: dict[bytes, list[PskCandidate]]):
    return lambda identity: table.get(identity, [])


def make_pair(client_config: ClientConfig | None = None, server_config: ServerConfig | None = None):
    client_config = client_config or ClientConfig(IDENTITY, PSK, server_name="gw.example")
    server_config = server_config or ServerConfig(
        psk_lookup=lookup_for({IDENTITY: [PskCandidate(PSK, "1")]})
    )
    client = ClientConnection(client_config, rng=CountingRng(b"client"))
    server = ServerConnection(server_config, rng=CountingRng(b"server"))
    return client, server


def drain(conn) -> list:
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if type(event).__name__ == "ConnectionClosed":
            return events


def handshake(client: ClientConnection, server: ServerConnection):
    """Run the three flights; return (client events, server events)."""
    client.start_handshake()
    server.receive_data(client.data_to_send())
    server_events = drain(server)
    client.receive_data(server.data_to_send())
    client_events = drain(client)
    server.receive_data(client.data_to_send())
    server_events += drain(server)
    return client_events, server_events
