"""Test terminal: plays the modem's SIM Toolkit side against a VirtualSim, in memory.

It FETCHes every proactive command the card announces with 91xx, carries it out on an
in-memory network (TLS servers built on the real ``ztp.tls.ServerConnection`` with a tiny
HTTP responder, a DNS responder), answers with TERMINAL RESPONSE and reports events by
ENVELOPE. Time is a plain integer the test advances; toolkit timers fire on ``advance``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ztp import stk, tls
from ztp.sim import VirtualSim
from ztp.stk import (
    BipError,
    ChannelStatus,
    CloseChannel,
    EventDownload,
    GeneralResult,
    GetChannelStatus,
    OpenChannel,
    ReceiveData,
    Result,
    SendData,
    TerminalResponse,
    TimerAction,
    TimerExpiration,
    TimerManagement,
    TransportProtocol,
)

PROFILE = stk.build_terminal_profile(
    stk.BIP_FEATURES
    + (
        stk.Feature.GPRS,
        stk.Feature.TIMER_MANAGEMENT,
        stk.Feature.TIMER_GET_VALUE,
        stk.Feature.TIMER_EXPIRATION,
    ),
    channels=7,
)
DNS_SERVER = ipaddress.IPv4Address("10.0.0.53")


class Endpoint:
    """A remote peer: ``receive`` returns (bytes to deliver back, closed)."""

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        raise NotImplementedError


Handler = Callable[[bytes], bytes]


def http_response(status: int, body: bytes = b"", reason: str = "OK", extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n{extra}"
    return (head + "Connection: close\r\n\r\n").encode() + body


class HttpsServer(Endpoint):
    """TLS 1.3 PSK server (real ztp.tls engine) answering one HTTP request."""

    def __init__(self, keys: dict[bytes, bytes], handler: Handler, log: list) -> None:
        self.conn = tls.ServerConnection(
            tls.ServerConfig(
                psk_lookup=lambda ident: [tls.PskCandidate(keys[ident])] if ident in keys else []
            )
        )
        self.handler = handler
        self.request = bytearray()
        self.log = log
        self.done = False

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        self.conn.receive_data(data)
        closed = False
        while True:
            try:
                ev = self.conn.next_event()
            except tls.Alert:
                return self.conn.data_to_send(), True
            if ev is tls.NEED_DATA:
                break
            if isinstance(ev, tls.HandshakeComplete):
                self.log.append(ev)
            elif isinstance(ev, tls.ApplicationData):
                self.request += ev.data
                if not self.done and _request_complete(bytes(self.request)):
                    self.done = True
                    self.log.append(bytes(self.request))
                    self.conn.send_application_data(self.handler(bytes(self.request)))
                    self.conn.close()
                    closed = True
            elif isinstance(ev, tls.ConnectionClosed | tls.AlertReceived):
                closed = True
                break
        return self.conn.data_to_send(), closed


def _request_complete(req: bytes) -> bool:
    end = req.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in req[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(req) >= end + 4 + length


class DnsServer(Endpoint):
    def __init__(self, names: dict[str, str], log: list) -> None:
        self.names = names
        self.log = log

    def receive(self, data: bytes) -> tuple[bytes, bool]:
        qid = data[:2]
        pos = 12
        labels = []
        while data[pos]:
            labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
            pos += 1 + data[pos]
        question = data[12 : pos + 5]
        name = ".".join(labels)
        self.log.append(name)
        if name not in self.names:
            return qid + struct.pack("!5H", 0x8183, 1, 0, 0, 0) + question, False
        answer = b"\xc0\x0c" + struct.pack("!2HIH", 1, 1, 60, 4)
        answer += ipaddress.IPv4Address(self.names[name]).packed
        return qid + struct.pack("!5H", 0x8180, 1, 1, 0, 0) + question + answer, False


@dataclass
class Channel:
    number: int
    endpoint: Endpoint
    transport: TransportProtocol
    buffer_size: int
    rx: bytearray = field(default_factory=bytearray)
    tx: bytearray = field(default_factory=bytearray)
    established: bool = True
    reported: bool = False


class Terminal:
    """The modem's toolkit side. ``servers``: (ip, port) -> factory of a fresh Endpoint."""

    def __init__(
        self,
        sim: VirtualSim,
        servers: dict[tuple[str, int], Callable[[], Endpoint]],
        *,
        profile: bytes = PROFILE,
        dns_servers: tuple[ipaddress.IPv4Address, ...] = (DNS_SERVER,),
    ) -> None:
        self.sim = sim
        self.servers = servers
        self.profile = profile
        self.dns_servers = dns_servers
        self.now_ms = 0
        self.channels: dict[int, Channel] = {}
        self.timers: dict[int, int] = {}
        self.events: deque[stk.Envelope] = deque()
        self.fetch_len = 0
        self.commands: list[stk.ProactiveCommand] = []
        self.apdus = 0
        self.cost_ms = 0.0
        self.max_chunk = 237  # bytes per RECEIVE DATA answer (the real limit is 237)
        self.tr_override: Callable[[stk.ProactiveCommand], TerminalResponse | None] | None = None

    def start(self) -> None:
        self.sim.reset()
        assert self.send(stk.build_terminal_profile_apdu(self.profile))[-2:] == b"\x90\x00"

    def send(self, apdu: bytes) -> bytes:
        resp = self.sim.transmit(apdu, self.now_ms)
        self.apdus += 1
        self.cost_ms += self.sim.last_cost_ms
        if resp[-2] == 0x91:
            self.fetch_len = resp[-1]
        return resp

    def host(self, apdu_hex: str) -> bytes:
        """An APDU from the device (AT+CSIM), then let the toolkit run."""
        resp = self.send(bytes.fromhex(apdu_hex.replace(" ", "")))
        self.run()
        return resp

    def run(self, limit: int = 2000) -> None:
        for _ in range(limit):
            if self.fetch_len:
                n, self.fetch_len = self.fetch_len, 0
                resp = self.send(stk.build_fetch_apdu(n))
                assert resp[-2:] == b"\x90\x00", resp.hex()
                cmd = stk.parse_proactive_command(resp[:-2])
                self.commands.append(cmd)
                tr = self.tr_override(cmd) if self.tr_override else None
                tr = tr or self.execute(cmd)
                resp = self.send(stk.build_terminal_response_apdu(stk.build_terminal_response(tr)))
                assert resp[-2:] == b"\x90\x00" or resp[-2] == 0x91, resp.hex()
                continue
            if self.events:
                env = self.events.popleft()
                resp = self.send(stk.build_envelope_apdu(stk.build_envelope(env)))
                assert resp[-2:] == b"\x90\x00" or resp[-2] == 0x91, resp.hex()
                continue
            return
        raise AssertionError("toolkit did not settle")

    def advance(self, ms: int) -> None:
        """Let time pass: fire due timers (TIMER EXPIRATION envelopes)."""
        self.now_ms += ms
        for tid, deadline in sorted(self.timers.items()):
            if deadline <= self.now_ms:
                del self.timers[tid]
                self.events.append(TimerExpiration(tid, 0))
        self.run()

    def next_timer(self) -> int | None:
        return min(self.timers.values()) if self.timers else None

    def run_until_idle(self, max_ms: int = 600_000) -> None:
        """Fire timers until none is left (bounded)."""
        while self.timers and self.now_ms < max_ms:
            self.advance(max(0, min(self.timers.values()) - self.now_ms))

    # ------------------------------------------------------------------ commands
    def execute(self, cmd: stk.ProactiveCommand) -> TerminalResponse:
        ok = Result(GeneralResult.PERFORMED_SUCCESSFULLY)
        if isinstance(cmd, OpenChannel):
            dest = cmd.destination
            dns = self.dns_servers if cmd.dns_request else ()
            if dest is None and cmd.dns_request and dns:
                dest = dns[0]
            factory = self.servers.get((str(dest), cmd.port)) if dest else None
            fail = Result(GeneralResult.BIP_ERROR, bytes([BipError.REMOTE_DEVICE_NOT_REACHABLE]))
            if factory is None:
                return TerminalResponse.for_command(
                    cmd, fail, bearer=cmd.bearer, buffer_size=cmd.buffer_size
                )
            number = min(set(range(1, 8)) - set(self.channels))
            self.channels[number] = Channel(number, factory(), cmd.transport, cmd.buffer_size)
            return TerminalResponse.for_command(
                cmd,
                ok,
                channel_status=(ChannelStatus(number, True),),
                bearer=cmd.bearer,
                buffer_size=cmd.buffer_size,
                dns_servers=dns,
            )
        if isinstance(cmd, SendData):
            ch = self.channels.get(cmd.channel)
            if ch is None or not ch.established:
                return TerminalResponse.for_command(
                    cmd, Result(GeneralResult.BIP_ERROR, bytes([BipError.CHANNEL_CLOSED]))
                )
            ch.tx += cmd.data
            if cmd.immediate:
                out, closed = ch.endpoint.receive(bytes(ch.tx))
                ch.tx.clear()
                self._deliver(ch, out, closed)
            return TerminalResponse.for_command(cmd, ok, channel_data_length=255)
        if isinstance(cmd, ReceiveData):
            ch = self.channels.get(cmd.channel)
            if ch is None or not ch.rx:
                return TerminalResponse.for_command(
                    cmd, Result(GeneralResult.BIP_ERROR, bytes([BipError.NO_SPECIFIC_CAUSE]))
                )
            n = min(cmd.length, len(ch.rx), self.max_chunk)
            data = bytes(ch.rx[:n])
            del ch.rx[:n]
            if not ch.rx:
                ch.reported = False
            return TerminalResponse.for_command(
                cmd, ok, channel_data=data, channel_data_length=min(len(ch.rx), 255)
            )
        if isinstance(cmd, CloseChannel):
            if self.channels.pop(cmd.channel, None) is None:
                return TerminalResponse.for_command(
                    cmd, Result(GeneralResult.BIP_ERROR, bytes([BipError.CHANNEL_ID_NOT_VALID]))
                )
            return TerminalResponse.for_command(cmd, ok)
        if isinstance(cmd, GetChannelStatus):
            statuses = tuple(ChannelStatus(c, ch.established) for c, ch in self.channels.items())
            return TerminalResponse.for_command(cmd, ok, channel_status=statuses)
        if isinstance(cmd, TimerManagement):
            if cmd.action == TimerAction.START:
                assert cmd.value_s is not None
                self.timers[cmd.timer_id] = self.now_ms + cmd.value_s * 1000
                return TerminalResponse.for_command(cmd, ok, timer_id=cmd.timer_id)
            if cmd.timer_id not in self.timers:
                return TerminalResponse.for_command(cmd, Result(0x24), timer_id=cmd.timer_id)
            left = max(0, (self.timers[cmd.timer_id] - self.now_ms) // 1000)
            if cmd.action == TimerAction.DEACTIVATE:
                del self.timers[cmd.timer_id]
            return TerminalResponse.for_command(cmd, ok, timer_id=cmd.timer_id, timer_value_s=left)
        raise AssertionError(cmd)

    def _deliver(self, ch: Channel, data: bytes, closed: bool) -> None:
        if data:
            ch.rx += data
            if not ch.reported:
                ch.reported = True
                self.events.append(
                    EventDownload(
                        stk.Event.DATA_AVAILABLE,
                        ChannelStatus(ch.number, True),
                        min(len(ch.rx), 255),
                    )
                )
        if closed and ch.established:
            ch.established = False
            self.events.append(
                EventDownload(stk.Event.CHANNEL_STATUS, ChannelStatus(ch.number, False, 5))
            )
