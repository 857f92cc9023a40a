"""One address must not lock every SIM out (issue 13 item 1), on loopback, bounded in time:

- a slow-connection flood: 1,030 connections from 127.0.0.1 that send a few bytes of a
  ClientHello and then nothing, holding a 1,024-connection cap; a SIM from another
  address (127.0.0.2) is served all the same;
- a reconnect storm from the flooding address while the cap is held: every attempt is refused
  and counted, and the log says so once, not once per attempt.

Default limits (per-address rate, handshake and idle timeouts) except the cap, which is the
1,024 of the report, and the PSK poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import resource
import time

import pytest
from ztp.gateway import GatewayConfig, JsonFormatter

from .harness import engine_fetch, running_gateway, stub_service
from .test_gateway import CONFIG, IDENTITY, PSK, get, make_state

FLOOD = 1030
# the first bytes of a TLS record holding a ClientHello: the handshake is never finished
PARTIAL_HELLO = bytes.fromhex("160301")


@pytest.fixture(autouse=True)
def enough_files():
    """The flood needs ~2 descriptors per connection in this process (client and server)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * FLOOD + 512
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@contextlib.contextmanager
def captured_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("ztp")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def open_slow(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None
    writer.write(PARTIAL_HELLO)
    return reader, writer


async def hold_the_cap(gw, port: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """1,030 slow connections from 127.0.0.1, re-opened until the gateway holds its cap."""
    held = [c for c in await asyncio.gather(*(open_slow(port) for _ in range(FLOOD))) if c]
    async with asyncio.timeout(20):
        while gw.active < gw.config.max_connections:
            await asyncio.sleep(0.05)  # refused ones (the address rate) come back later
            missing = gw.config.max_connections - gw.active
            held += [
                c for c in await asyncio.gather(*(open_slow(port) for _ in range(missing))) if c
            ]
    return held


async def reconnect_storm(port: int, seconds: float) -> tuple[int, list]:
    """Connect from the flooding address again and again, as fast as the answers come.
    Returns (attempts, connections that were admitted: a slot had come free)."""
    attempts = 0
    admitted = []
    end = time.monotonic() + seconds

    async def one_loop() -> None:
        nonlocal attempts
        while time.monotonic() < end:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            attempts += 1
            try:
                await asyncio.wait_for(reader.read(), 0.5)  # refused: closed at once
            except TimeoutError:
                admitted.append(writer)
                continue
            except OSError:
                pass
            writer.close()

    await asyncio.gather(*(one_loop() for _ in range(8)))
    return attempts, admitted


def test_slow_flood_from_one_address_does_not_lock_out_another():
    async def main():
        state = make_state()
        cfg = GatewayConfig(
            name="gw-test", max_connections=1024, psk_poll_interval_s=0.05, shutdown_grace_s=0
        )
        with captured_log() as log:
            async with stub_service(state) as url, running_gateway(url, cfg) as (gw, port):
                held = await hold_the_cap(gw, port)
                assert gw.active == cfg.max_connections == 1024
                log_before = len(log.getvalue())

                # a SIM from another address is served although the cap is held
                got = await engine_fetch(port, IDENTITY, PSK, get(), source="127.0.0.2")
                assert got.status == 200 and got.body == CONFIG
                m = gw.metrics.registry.get_sample_value
                assert m("ztp_gateway_connections_evicted_total") == 1
                assert gw.active == 1024  # the SIM's slot came from the flooder

                # the flooder reconnecting in a loop gets nothing, and the log stays small
                attempts, admitted = await reconnect_storm(port, 1.5)
                rejected = sum(
                    m("ztp_gateway_connections_rejected_total", {"reason": r}) or 0
                    for r in ("max_connections", "address_rate")
                )
                # (the first SIM's slot came free meanwhile: one of them may have taken it)
                assert len(admitted) <= 1
                assert attempts > 100 and rejected >= attempts - len(admitted)
                text = log.getvalue()[log_before:]
                assert text.count('"connection_rejected"') <= 2  # one per reason and interval
                assert len(text) < 8_000, len(text)  # kilobytes, not one line per attempt

                # ...and a second SIM from the other address is still served
                got = await engine_fetch(port, IDENTITY, PSK, get(), source="127.0.0.2")
                assert got.status == 200
                for writer in [w for _, w in held] + admitted:
                    writer.close()

    asyncio.run(main())
