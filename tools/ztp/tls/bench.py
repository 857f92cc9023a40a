"""On-demand benchmark of the engine in memory (not part of the test suite).

    python -m ztp.tls.bench [--seconds 2]

For psk_ke/CCM (the SAFE2 profile) and psk_dhe_ke/x25519, runs whole client+server
handshakes in memory and reports the server's CPU microseconds per handshake (only the
server's calls are timed, with ``time.thread_time``) and the resulting handshakes per second
per core, plus the wire bytes of the three flights.
"""

from __future__ import annotations

import argparse
import os
import time

from ._connection import (
    ClientConfig,
    ClientConnection,
    PskCandidate,
    ServerConfig,
    ServerConnection,
)
from ._events import NEED_DATA, ConnectionClosed, Event
from ._messages import CipherSuite, KeyExchangeMode

IDENTITY = bytes.fromhex("984405529081369836f5")
PSK = bytes(range(16))

PROFILES = {
    "psk_ke / AES-128-CCM": ClientConfig(IDENTITY, PSK),
    "psk_dhe_ke x25519 / AES-128-CCM": ClientConfig(
        IDENTITY, PSK, key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,)
    ),
    "psk_dhe_ke x25519 / AES-128-GCM": ClientConfig(
        IDENTITY,
        PSK,
        key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
    ),
}


def drain(conn: ClientConnection | ServerConnection) -> list[Event]:
    """The events up to ``NEED_DATA``.

    Raises:
        ConnectionError: the peer closed or sent an alert. After that ``next_event()`` keeps
            returning ``ConnectionClosed`` and never ``NEED_DATA``, so a plain
            ``while next_event() is not NEED_DATA`` loop would never end.
    """
    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        if isinstance(event, ConnectionClosed):
            raise ConnectionError(f"peer closed the connection: {events + [event]}")
        events.append(event)  # type: ignore[arg-type]
    return events


def one_handshake(client_config: ClientConfig, server_config: ServerConfig) -> tuple[int, int]:
    """Return (server CPU ns, wire bytes) for one full handshake."""
    client = ClientConnection(client_config, rng=os.urandom)
    client.start_handshake()
    hello = client.data_to_send()
    t0 = time.thread_time_ns()
    server = ServerConnection(server_config, rng=os.urandom)
    server.receive_data(hello)
    drain(server)
    flight = server.data_to_send()
    t1 = time.thread_time_ns()
    client.receive_data(flight)
    drain(client)
    finished = client.data_to_send()
    t2 = time.thread_time_ns()
    server.receive_data(finished)
    drain(server)
    t3 = time.thread_time_ns()
    return (t1 - t0) + (t3 - t2), len(hello) + len(flight) + len(finished)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per profile")
    args = parser.parse_args()
    server_config = ServerConfig(psk_lookup=lambda identity: [PskCandidate(PSK, "1")])
    print("| mode / suite | server CPU us per handshake | handshakes/s per core | wire bytes |")
    print("|---|---|---|---|")
    for name, client_config in PROFILES.items():
        for _ in range(50):  # warm-up
            one_handshake(client_config, server_config)
        total_ns = count = 0
        wire = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            ns, wire = one_handshake(client_config, server_config)
            total_ns += ns
            count += 1
        per = total_ns / count / 1000
        print(f"| {name} | {per:.0f} | {1e6 / per:.0f} | {wire} |")


if __name__ == "__main__":
    main()
