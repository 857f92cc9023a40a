"""``ztp bench tls``: server handshakes per second in memory, ztp.tls beside OpenSSL.

Both sides run client and server in one thread joined in memory and time only the server's
calls: thread CPU time (``time.thread_time_ns`` / CLOCK_THREAD_CPUTIME_ID) and wall time.
Handshakes/s is per core: handshakes divided by the server's CPU seconds. Profile: external
PSK (10-byte binary identity, 16-byte key), TLS_AES_128_CCM_SHA256, SNI, no tickets.

- psk_ke: our client offers psk_ke without key_share (as a SIM does). The OpenSSL 3.0 client
  cannot leave key_share out; its server is steered to psk_ke (see ``_c_tls``), so it parses and
  ignores one x25519 share.
- psk_dhe_ke: both clients offer x25519, the server does one x25519 key generation + ECDH.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING

from ._c_tls import TLS_HARNESS_C
from ._common import BenchError, Table, build_c, pin_self, taskset

IDENTITY = bytes.fromhex("984405529081369836f5")  # SAFE2-PROTOCOL.md example EF_ICCID
PSK = bytes.fromhex("00112233445566778899aabbccddeeff")
MODES = ("psk_ke", "psk_dhe_ke")

if TYPE_CHECKING:
    from ztp.tls import ClientConnection, Event, ServerConnection


def drain(conn: ClientConnection | ServerConnection) -> list[Event]:
    """The events of ``conn`` (a ztp.tls connection) up to ``NEED_DATA``.

    Raises:
        ConnectionError: the peer closed or sent an alert. After that ``next_event()`` keeps
            returning ``ConnectionClosed`` and never ``NEED_DATA``, so a plain
            ``while next_event() is not NEED_DATA`` loop would never end.
    """
    from ztp.tls import NEED_DATA, ConnectionClosed

    events: list[Event] = []
    while (event := conn.next_event()) is not NEED_DATA:
        if isinstance(event, ConnectionClosed):
            raise ConnectionError(f"peer closed the connection: {events + [event]}")
        events.append(event)
    return events


def measure_ztp(mode: str, n: int) -> dict[str, float]:
    """n in-memory handshakes with ztp.tls; returns server CPU/wall seconds and wire bytes."""
    from ztp.tls import (
        ClientConfig,
        ClientConnection,
        HandshakeComplete,
        KeyExchangeMode,
        PskCandidate,
        ServerConfig,
        ServerConnection,
    )

    dhe = mode == "psk_dhe_ke"
    candidates = [PskCandidate(PSK, "1")]
    server_config = ServerConfig(psk_lookup=lambda ident: candidates if ident == IDENTITY else [])
    client_config = ClientConfig(
        IDENTITY,
        PSK,
        server_name="gw.example",
        key_exchange_modes=(KeyExchangeMode.PSK_DHE_KE,) if dhe else (KeyExchangeMode.PSK_KE,),
        send_key_share=dhe,
    )
    cpu_ns = wall_ns = 0
    server_bytes = client_bytes = 0
    for _ in range(n):
        client = ClientConnection(client_config)
        client.start_handshake()
        to_server = client.data_to_send()
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        server = ServerConnection(server_config)
        server.receive_data(to_server)
        drain(server)  # ends at NEED_DATA; raises if the peer closed
        to_client = server.data_to_send()
        cpu_ns += time.thread_time_ns() - c0
        wall_ns += time.perf_counter_ns() - w0
        client.receive_data(to_client)
        done = any(isinstance(event, HandshakeComplete) for event in drain(client))
        to_server = client.data_to_send()
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        server.receive_data(to_server)
        complete = None
        for event in drain(server):
            if isinstance(event, HandshakeComplete):
                complete = event
        cpu_ns += time.thread_time_ns() - c0
        wall_ns += time.perf_counter_ns() - w0
        if not done or complete is None:
            raise BenchError(f"ztp.tls {mode} handshake did not complete")
        want = KeyExchangeMode.PSK_DHE_KE if dhe else KeyExchangeMode.PSK_KE
        if complete.key_exchange_mode != want:
            raise BenchError(f"ztp.tls negotiated {complete.key_exchange_mode}, wanted {want}")
        server_bytes += server.bytes_sent
        client_bytes += client.bytes_sent
    return {
        "n": n,
        "server_cpu_s": cpu_ns / 1e9,
        "server_wall_s": wall_ns / 1e9,
        "server_bytes": server_bytes / n,
        "client_bytes": client_bytes / n,
    }


def measure_openssl(mode: str, n: int, cpu: int | None) -> dict[str, object]:
    exe = build_c("tls_handshakes", TLS_HARNESS_C, ("-lssl", "-lcrypto"))
    arg = "dhe" if mode == "psk_dhe_ke" else "ke"
    proc = subprocess.run(
        [*taskset(cpu), str(exe), arg, str(n)], capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise BenchError(f"OpenSSL harness failed: {proc.stderr.strip()[-1000:]}")
    result = json.loads(proc.stdout)
    if result["key_share"] != (1 if arg == "dhe" else 0):
        raise BenchError(f"OpenSSL did not negotiate {mode} (ServerHello key_share check)")
    return result


def run(n: int = 2000, cpu: int | None = 0) -> Table:
    """Measure both implementations in both modes; OpenSSL is the reference."""
    pin_self(cpu)
    table = Table(
        title=f"TLS 1.3 server handshakes in memory ({n} per row, one core)",
        columns=[
            "implementation",
            "mode",
            "handshakes/s",
            "CPU-us/hs",
            "wall-us/hs",
            "server bytes",
            "vs OpenSSL",
        ],
    )
    version = ""
    for mode in MODES:
        measure_ztp(mode, max(1, n // 20))  # warm-up: imports, caches
        ours = measure_ztp(mode, n)
        ref = measure_openssl(mode, n, cpu)
        version = " ".join(str(ref["version"]).split()[:2])
        ours_us = ours["server_cpu_s"] / n * 1e6
        ref_us = float(ref["server_cpu_s"]) / n * 1e6  # type: ignore[arg-type]
        for name, us, res in (("ztp.tls", ours_us, ours), (version, ref_us, ref)):
            wall_us = float(res["server_wall_s"]) / n * 1e6  # type: ignore[arg-type]
            table.rows.append(
                [
                    name,
                    f"{mode}/CCM" if mode == "psk_ke" else f"{mode}/x25519/CCM",
                    f"{1e6 / us:,.0f}",
                    f"{us:,.1f}",
                    f"{wall_us:,.1f}",
                    f"{float(res['server_bytes']):.0f}",  # type: ignore[arg-type]
                    f"{ref_us / us:.2f}x",
                ]
            )
        table.data[mode] = {"ztp": ours, "openssl": ref}
    table.notes += [
        "handshakes/s = handshakes / server CPU seconds; wall includes time the scheduler gave "
        "to other processes",
        "OpenSSL: C harness with a memory BIO pair, compiled at bench time against libssl; "
        "its psk_ke client also sends an x25519 key_share that the server ignores",
        "vs OpenSSL: OpenSSL CPU time / ours (above 1 = faster than OpenSSL)",
    ]
    return table
