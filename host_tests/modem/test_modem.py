"""The asyncio modem end to end: pyserial on the pty / TCP, AT+CSIM, BIP against loopback."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import serial
from ztp.modem import Faults, LatencyModel, Network, Registration, VirtualModem

from .cards import ICCID, BipCard

FINAL = re.compile(rb"\r\n(OK|ERROR|\+CME ERROR: [^\r]*)\r\n")


async def pong_server() -> tuple[asyncio.AbstractServer, list[bytes]]:
    """Reads one request, answers b"pong:" + request, closes."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(100)
        seen.append(data)
        writer.write(b"pong:" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


class Host:
    """A pyserial client used from the event loop through a worker thread."""

    def __init__(self, url: str) -> None:
        self.ser = serial.serial_for_url(url, baudrate=115200, timeout=0.05)
        self.buf = b""

    async def command(self, line: bytes, timeout_s: float = 10.0) -> bytes:
        await asyncio.to_thread(self.ser.write, line + b"\r")
        return await self.read_until_final(timeout_s)

    async def read_until_final(self, timeout_s: float = 10.0) -> bytes:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while not FINAL.search(self.buf):
            if loop.time() > end:
                raise AssertionError(f"no final result code in {self.buf!r}")
            self.buf += await asyncio.to_thread(self.ser.read, 4096)
        m = FINAL.search(self.buf)
        assert m is not None
        out, self.buf = self.buf[:m.end()], self.buf[m.end():]
        return out

    def close(self) -> None:
        self.ser.close()


async def until(pred: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))


def test_pty_at_and_csim_with_pyserial() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        async with VirtualModem(card) as modem:
            path = await modem.serve_pty()
            host = Host(path)
            try:
                assert await host.command(b"AT") == b"AT\r\r\nOK\r\n"
                assert await host.command(b"ATE0") == b"ATE0\r\r\nOK\r\n"
                assert await host.command(b"AT+CCID") == b"\r\n+CCID: %s\r\n\r\nOK\r\n" % (
                    ICCID.encode())
                assert await host.command(b'AT+CSIM=10,"0070000001"') == \
                    b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n'
                assert await host.command(b"AT+CEREG?") == b"\r\nERROR\r\n"
                assert await host.command(b"AT+CREG?") == b"\r\n+CREG: 0,1\r\n\r\nOK\r\n"
            finally:
                host.close()
        # The terminal profile reached the card at start-up and announces BIP.
        assert card.profile is not None and card.profile[11] & 0x1F == 0x1F

    run(main)


def test_bip_session_triggered_by_host_91xx() -> None:
    async def main() -> None:
        server, seen = await pong_server()
        port = server.sockets[0].getsockname()[1]
        card = BipCard(("127.0.0.1", port), b"hello")
        async with server, VirtualModem(card) as modem:
            addr = await modem.serve_tcp("127.0.0.1", 0)
            host = Host(f"socket://{addr[0]}:{addr[1]}")
            try:
                await host.command(b"ATE0")
                # The host sees 91xx unchanged; the modem fetches and runs the command itself.
                reply = await host.command(b'AT+CSIM=10,"00CA000000"')
                assert re.fullmatch(rb'\r\n\+CSIM: 4,"91[0-9A-F]{2}"\r\n\r\nOK\r\n', reply)
                await until(lambda: card.done, "the card's BIP job")
                assert seen == [b"hello"]
                reply = await host.command(b'AT+CSIM=10,"00CC000000"')
                expected = (b"pong:hello" + b"\x90\x00").hex().upper().encode()
                assert reply == b'\r\n+CSIM: %d,"%s"\r\n\r\nOK\r\n' % (len(expected), expected)
            finally:
                host.close()
        kinds = [type(tr.details).__name__ for tr in card.results]
        assert kinds and all(tr.result.ok for tr in card.results)
        assert [tr.details.type for tr in card.results] == [0x40, 0x43, 0x42, 0x41]

    run(main)


def test_server_unreachable_fault_gives_bip_error() -> None:
    async def main() -> None:
        server, seen = await pong_server()
        port = server.sockets[0].getsockname()[1]
        card = BipCard(("127.0.0.1", port))
        faults = Faults(unreachable=frozenset({f"127.0.0.1:{port}"}))
        async with server, VirtualModem(card, faults=faults) as modem:
            await modem.transmit(bytes.fromhex("00CA000000"))
            await until(lambda: bool(card.results), "the OPEN CHANNEL answer")
            assert card.results[0].result.general == 0x3A  # BIP error
            assert card.results[0].result.additional == b"\x07"
            assert seen == []

    run(main)


def test_no_network_open_channel_fails() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        faults = Faults(registration=Registration.DENIED)
        async with VirtualModem(card, faults=faults) as modem:
            await modem.transmit(bytes.fromhex("00CA000000"))
            await until(lambda: bool(card.results), "the OPEN CHANNEL answer")
            assert card.results[0].result.general == 0x21  # network currently unable

    run(main)


def test_registration_delay_urc_over_tcp() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        latency = LatencyModel(registration_delay_ms=300)
        async with VirtualModem(card, latency=latency) as modem:
            addr = await modem.serve_tcp("127.0.0.1", 0)
            host = Host(f"socket://{addr[0]}:{addr[1]}")
            try:
                assert await host.command(b"ATE0;+CREG=1;+CREG?") == \
                    b"ATE0;+CREG=1;+CREG?\r\r\n+CREG: 1,2\r\n\r\nOK\r\n"
                await until(lambda: modem.core.packet_attached, "registration")
                await until(lambda: b"+CREG: 1\r\n" in host.buf or bool(
                    host.ser.in_waiting), "URC bytes")
                host.buf += await asyncio.to_thread(host.ser.read, 100)
                assert host.buf == b"\r\n+CREG: 1\r\n"
            finally:
                host.close()

    run(main)


def test_sim_busy_then_reboot_closes_channels() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        latency = LatencyModel(reboot_ms=100, sim_init_ms=0)  # short boot: a fast test
        async with VirtualModem(card, faults=Faults(sim_busy_commands=1),
                                latency=latency) as modem:
            addr = await modem.serve_tcp("127.0.0.1", 0)
            host = Host(f"socket://{addr[0]}:{addr[1]}")
            try:
                await host.command(b"ATE0;+CMEE=1")
                assert await host.command(b'AT+CSIM=10,"0070000001"') == \
                    b"\r\n+CME ERROR: 14\r\n"
                assert (await host.command(b'AT+CSIM=10,"0070000001"')).startswith(b"\r\n+CSIM")
                assert await host.command(b"AT+CFUN=16") == b"\r\nOK\r\n"
                await until(lambda: modem.reboots == 1 and card.reset_count == 2, "reboot")
                await asyncio.sleep(0.2)  # past the boot time (reboot_ms)
                # Defaults again: echo on, CMEE 0.
                assert await host.command(b"AT+CEREG?") == b"AT+CEREG?\r\r\nERROR\r\n"
            finally:
                host.close()

    run(main)


def test_reboot_is_silent_then_sim_busy_then_registers_again() -> None:
    """SARA-U2 after a reset (docs/modem.md "Reboot"): deaf while it boots, then at its
    defaults, the SIM busy while the modem reads it, registration redone, channels closed."""
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        latency = LatencyModel(reboot_ms=400, sim_init_ms=400, registration_delay_ms=200)
        async with VirtualModem(card, latency=latency) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            await until(lambda: modem.core.packet_attached, "first registration")
            await modem.reboot()
            t0 = modem.now_ms()
            modem.feed(b"AT\r")
            await asyncio.sleep(0.2)
            assert b"OK" not in b"".join(out)  # booting: the command is lost
            assert not modem.core.packet_attached
            await asyncio.sleep(max(0, 400 - (modem.now_ms() - t0)) / 1000 + 0.05)
            out.clear()
            modem.feed(b"AT+CPIN?\r")
            await until(lambda: b"ERROR" in b"".join(out), "SIM busy")
            assert b"".join(out) == b"AT+CPIN?\r\r\nERROR\r\n"  # echo on, CMEE 0
            out.clear()
            modem.feed(b"AT+CMEE=1;+CPIN?\r")
            await until(lambda: b"\r\n" in b"".join(out)[len(b"AT+CMEE=1;+CPIN?\r"):],
                        "an answer")
            await until(lambda: modem.now_ms() - t0 > 900, "the SIM read")
            out.clear()
            modem.feed(b"AT+CPIN?\r")
            await until(lambda: b"OK" in b"".join(out), "SIM ready")
            assert b"+CPIN: READY" in b"".join(out)
            await until(lambda: modem.core.packet_attached, "registered again")

    run(main)


def test_uart_garble_fault_is_seeded_and_visible() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        faults = Faults(uart_garble_rate=1.0, seed=7)
        async with VirtualModem(card, faults=faults) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            await until(lambda: len(b"".join(out)) >= 9, "reply")
            data = b"".join(out)
            assert len(data) == len(b"AT\r\r\nOK\r\n")
            assert all(a != b for a, b in zip(data, b"AT\r\r\nOK\r\n", strict=True))
            modem.update_faults(uart_garble_rate=0.0)
            out.clear()
            modem.feed(b"AT\r")
            await until(lambda: b"".join(out) == b"AT\r\r\nOK\r\n", "clean reply")

    run(main)


def test_dns_server_answers_table_then_nxdomain() -> None:
    async def main() -> None:
        from ztp.modem import _dns

        net = Network({"gw.ztp.test": "127.0.0.7"}, use_system_resolver=False)
        await net.start()
        try:
            loop = asyncio.get_running_loop()
            got: asyncio.Queue[bytes] = asyncio.Queue()

            class Client(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: object) -> None:
                    got.put_nowait(data)

            transport, _ = await loop.create_datagram_endpoint(
                Client, remote_addr=net.route(str(net.dns_address), 53))
            q = bytes.fromhex("12340100000100000000000002677703")
            q += b"ztp\x04test\x00\x00\x01\x00\x01"
            transport.sendto(q)
            ans = await asyncio.wait_for(got.get(), 5)
            assert ans[:4] == bytes.fromhex("1234" "8580")
            assert ans.endswith(bytes.fromhex("C00C000100010000003C0004") + bytes([127, 0, 0, 7]))
            transport.sendto(q.replace(b"\x02gw", b"\x02xx"))
            ans = await asyncio.wait_for(got.get(), 5)
            assert ans[3] & 0x0F == _dns.RCODE_NXDOMAIN
            transport.sendto(b"\x12\x34\x01")  # truncated: no answer at all
            transport.sendto(q[:-1])  # truncated question: FORMERR
            ans = await asyncio.wait_for(got.get(), 5)
            assert ans[3] & 0x0F == _dns.RCODE_FORMERR
            transport.close()
        finally:
            await net.close()

    run(main)


def test_reboot_mid_session_closes_the_sockets() -> None:
    async def main() -> None:
        eof = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(100):
                pass  # hold the connection until the modem drops it
            eof.set()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        card = BipCard(("127.0.0.1", port))
        async with server, VirtualModem(card, greeting="+UMWI: 0,1") as modem:
            greeting: list[bytes] = []
            modem.observers.append(lambda kind, info: greeting.append(info["data"])
                                   if kind == "at_tx" else None)
            await modem.transmit(bytes.fromhex("00CA000000"))
            await until(lambda: card.channel is not None and len(card.results) >= 2, "session")
            assert modem.toolkit.open_channels == (card.channel,)
            await modem.reboot()
            await asyncio.wait_for(eof.wait(), 5)
            assert modem.toolkit.open_channels == ()
            assert card.reset_count == 2 and modem.reboots == 1
            await until(lambda: b"\r\n+UMWI: 0,1\r\n" in b"".join(greeting), "greeting")

    run(main)


def test_uart_pacing_uses_ipr_or_the_latency_model() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        async with VirtualModem(card, latency=LatencyModel(uart_baud=9600)) as modem:
            assert modem._byte_time_s() == 10 / 9600
            modem.feed(b"AT+IPR=115200\r")
            await until(lambda: modem.core.ipr == 115200, "IPR")
            assert modem._byte_time_s() == 10 / 115200

    run(main)
