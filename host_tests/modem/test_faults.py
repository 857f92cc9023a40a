"""The virtual modem's fault and latency knobs do what they say: ``Faults.uart_drop_rate``
drops bytes on the way to the host (seeded, visible), ``LatencyModel.network_rtt_ms`` delays
the SIM's socket connect and every send by at least the round-trip time."""

from __future__ import annotations

import asyncio
import random

from ztp.modem import Faults, LatencyModel, VirtualModem

from .cards import BipCard
from .test_modem import run, until

REPLY = b"AT\r\r\nOK\r\n"  # echo on (the modem's default) + OK


async def _drop_run(rate: float, seed: int, commands: int) -> tuple[bytes, int]:
    """Feed AT `commands` times; -> (bytes the host got, bytes the modem says it dropped)."""
    card = BipCard(("127.0.0.1", 9))
    async with VirtualModem(card, faults=Faults(uart_drop_rate=rate, seed=seed)) as modem:
        out: list[bytes] = []
        modem.observers.append(lambda kind, info: out.append(info["data"])
                               if kind == "at_tx" else None)
        for _ in range(commands):
            modem.feed(b"AT\r")
        total = len(REPLY) * commands
        await until(lambda: len(b"".join(out)) + modem._uart.dropped == total, "replies")
        await asyncio.sleep(0.05)  # nothing else arrives
        return b"".join(out), modem._uart.dropped


def _expected_after_drops(data: bytes, rate: float, seed: int) -> bytes:
    """What a per-byte drop with probability `rate`, seeded by `seed`, leaves of `data`."""
    rng = random.Random(seed)
    return bytes(b for b in data if rng.random() >= rate)


def test_uart_drop_fault_is_seeded_and_really_drops_bytes() -> None:
    async def main() -> None:
        clean = REPLY * 8
        got, dropped = await _drop_run(0.3, 11, 8)
        assert 0 < dropped < len(clean)
        assert len(got) + dropped == len(clean)
        # exactly the bytes the seeded draw keeps, in order (dropped, never altered)
        assert got == _expected_after_drops(clean, 0.3, 11)
        # reproducible: the same seed drops the same bytes, another seed others
        again, dropped_again = await _drop_run(0.3, 11, 8)
        assert (again, dropped_again) == (got, dropped)
        other, _ = await _drop_run(0.3, 12, 8)
        assert other != got and other == _expected_after_drops(clean, 0.3, 12)

    run(main)


def test_uart_drop_rate_one_is_silence_and_zero_heals() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        async with VirtualModem(card, faults=Faults(uart_drop_rate=1.0)) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            await until(lambda: modem._uart.dropped == len(REPLY), "the dropped reply")
            assert b"".join(out) == b""
            modem.update_faults(uart_drop_rate=0.0)
            modem.feed(b"AT\r")
            await until(lambda: b"".join(out) == REPLY, "clean reply")
            assert modem._uart.dropped == len(REPLY)

    run(main)


def test_network_rtt_delays_connect_and_every_send() -> None:
    rtt_ms = 300

    async def main() -> None:
        loop = asyncio.get_running_loop()
        arrived: list[float] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = loop.time()
            data = await reader.read(100)
            arrived.extend((accepted, loop.time()))
            writer.write(b"pong:" + data)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        card = BipCard(("127.0.0.1", port), b"hello")
        events: list[tuple[float, str]] = []
        async with server, VirtualModem(card, latency=LatencyModel(network_rtt_ms=rtt_ms)) \
                as modem:
            modem.observers.append(lambda kind, info: events.append((loop.time(), info["event"]))
                                   if kind == "link" else None)
            await modem.transmit(bytes.fromhex("00CA000000"))
            await until(lambda: card.done, "the card's BIP job")
        t = {name: when for when, name in reversed(events)}  # first time of each event
        accepted, received = arrived
        rtt_s = rtt_ms / 1000
        # connect: the socket is opened, and the SIM told so, only after one RTT (SYN, SYN-ACK)
        assert accepted - t["open"] >= rtt_s, events
        assert t["opened"] - t["open"] >= rtt_s, events
        # send: the data leaves the modem one RTT after the SIM's SEND DATA
        assert received - t["send"] >= rtt_s, events
        assert card.reply == bytearray(b"pong:hello")

    run(main)

