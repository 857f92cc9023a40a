"""Test harness: the real SIM Toolkit terminal (``ztp.modem.ToolkitTerminal``) in front of a
VirtualSim, with an in-memory network.

The terminal decides what goes to the card (TERMINAL PROFILE, FETCH, TERMINAL RESPONSE,
ENVELOPE) and which network actions to take; this harness only carries APDUs to the card and
the terminal's ``OpenLink``/``SendLink``/``CloseLink`` to the test endpoints (TLS servers on
the real ``ztp.tls.ServerConnection`` with a tiny HTTP responder, a DNS responder). Time is a
plain integer the test advances; the terminal's timers fire on ``advance``.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from ztp import stk, tls
from ztp.modem import TERMINAL_PROFILE, CloseLink, OpenLink, SendLink, ToolkitTerminal
from ztp.sim import VirtualSim
from ztp.stk import TerminalResponse, TimerAction, TimerExpiration, TimerManagement

PROFILE = TERMINAL_PROFILE  # the modem's: BIP (TCP, UDP), GPRS, timers incl. expiration
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


_INS_FETCH = 0x12
_INS_TERMINAL_RESPONSE = 0x14
_INS_ENVELOPE = 0xC2


def _ok(resp: bytes) -> bool:
    return resp[-2:] == b"\x90\x00" or resp[-2] == 0x91


@dataclass
class _Link:
    """One connected channel: its endpoint and what the network has not delivered yet."""

    endpoint: Endpoint
    backlog: bytearray = field(default_factory=bytearray)
    closing: bool = False  # the remote closed after the backlog


class Terminal:
    """``ToolkitTerminal`` + card + network. ``servers``: (ip, port) -> a fresh Endpoint."""

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
        self.tk = ToolkitTerminal(dns_servers=dns_servers)
        self.now_ms = 0
        self._links: dict[int, _Link] = {}
        # Toolkit timers the card started and that neither expired nor were deactivated, as
        # seen on the wire: id -> deadline (ms).
        self.timers: dict[int, int] = {}
        self.commands: list[stk.ProactiveCommand] = []  # every proactive command fetched
        self.apdus = 0
        self.cost_ms = 0.0
        self.max_chunk: int | None = None  # the network delivers at most this much at a time
        self.tr_override: Callable[[stk.ProactiveCommand], TerminalResponse | None] | None = None

    @property
    def channels(self) -> dict[int, Endpoint]:
        """The terminal's open BIP channels and their endpoints."""
        return {c: self._links[c].endpoint for c in self.tk.open_channels if c in self._links}

    # ------------------------------------------------------------------ card side
    def start(self) -> None:
        """Card reset, then the terminal's TERMINAL PROFILE (``profile`` in its place)."""
        self.sim.reset()
        self.tk.start()
        self._pump()
        self.timers.clear()
        apdu = self.tk.pending_apdu()
        assert apdu == stk.build_terminal_profile_apdu(TERMINAL_PROFILE)
        resp = self._card(stk.build_terminal_profile_apdu(self.profile))
        assert resp[-2:] == b"\x90\x00", resp.hex()
        self.tk.card_response(resp, self.now_ms)

    def reboot(self) -> None:
        """The modem restarts without resetting the card: channels and timers are gone."""
        self.tk.stop()
        self._pump()
        self.timers.clear()

    def send(self, apdu: bytes) -> bytes:
        """An APDU from the device (AT+CSIM); a '91 xx' answer makes the terminal FETCH."""
        resp = self._card(apdu)
        self.tk.card_answer_seen(resp)
        return resp

    def host(self, apdu_hex: str) -> bytes:
        """An APDU from the device, then let the toolkit run."""
        resp = self.send(bytes.fromhex(apdu_hex.replace(" ", "")))
        self.run()
        return resp

    def _card(self, apdu: bytes) -> bytes:
        resp = self.sim.transmit(apdu, self.now_ms)
        self.apdus += 1
        self.cost_ms += self.sim.last_cost_ms
        if apdu[:2] == bytes([0x80, _INS_ENVELOPE]) and len(apdu) > 5 and _ok(resp):
            try:
                env = stk.parse_envelope(apdu[5:])
            except stk.StkDecodeError:
                return resp
            if isinstance(env, TimerExpiration):
                self.timers.pop(env.timer_id, None)
        return resp

    def run(self, limit: int = 2000) -> None:
        """Carry the terminal's APDUs to the card and its actions to the network until both
        are quiet."""
        for _ in range(limit):
            self._pump()
            apdu = self.tk.pending_apdu()
            if apdu is None:
                if any(link.backlog or link.closing for link in self._links.values()):
                    continue
                return
            resp = self._card(apdu)
            if apdu[1] == _INS_FETCH:
                assert resp[-2:] == b"\x90\x00", resp.hex()
                cmd = stk.parse_proactive_command(resp[:-2])
                self.commands.append(cmd)
                self._track_timer(cmd)
                tr = self.tr_override(cmd) if self.tr_override else None
                if tr is not None:  # the test answers in the terminal's place
                    self.tk.card_response(b"\x90\x00", self.now_ms)  # nothing to carry out
                    wire = stk.build_terminal_response(tr)
                    resp = self._card(stk.build_terminal_response_apdu(wire))
                    assert _ok(resp), resp.hex()
                    self.tk.card_answer_seen(resp)
                    continue
            elif apdu[1] in (_INS_TERMINAL_RESPONSE, _INS_ENVELOPE):
                assert _ok(resp), resp.hex()
            self.tk.card_response(resp, self.now_ms)
        raise AssertionError("toolkit did not settle")

    def _track_timer(self, cmd: stk.ProactiveCommand) -> None:
        if isinstance(cmd, TimerManagement):
            if cmd.action == TimerAction.START:
                assert cmd.value_s is not None
                self.timers[cmd.timer_id] = self.now_ms + cmd.value_s * 1000
            elif cmd.action == TimerAction.DEACTIVATE:
                self.timers.pop(cmd.timer_id, None)

    def advance(self, ms: int) -> None:
        """Let time pass: the terminal fires due timers (TIMER EXPIRATION envelopes)."""
        self.now_ms += ms
        self.tk.handle_timer(self.now_ms)
        self.run()

    def next_timer(self) -> int | None:
        return self.tk.timer()

    def run_until_idle(self, max_ms: int = 600_000) -> None:
        """Fire timers until none is left (bounded)."""
        while (deadline := self.tk.timer()) is not None and self.now_ms < max_ms:
            self.advance(max(0, deadline - self.now_ms))

    # ------------------------------------------------------------------ network side
    def _pump(self) -> None:
        """Carry out the terminal's network actions; deliver what the endpoints answered."""
        while True:
            # (the terminal's NEED_DATA is not ztp.modem.NEED_DATA, the AT core's: test types)
            action = self.tk.next_event()
            if not isinstance(action, OpenLink | SendLink | CloseLink):
                break
            if isinstance(action, OpenLink):
                factory = self.servers.get((str(action.address), action.port))
                if factory is None:
                    self.tk.link_failed(action.channel)
                else:
                    self._links[action.channel] = _Link(factory())
                    self.tk.link_opened(action.channel)
            elif isinstance(action, SendLink):
                link = self._links.get(action.channel)
                if link is not None and not link.closing:
                    out, closed = link.endpoint.receive(action.data)
                    link.backlog += out
                    link.closing = closed
            elif isinstance(action, CloseLink):
                self._links.pop(action.channel, None)
        for channel, link in list(self._links.items()):
            if link.backlog:
                n = self.max_chunk or len(link.backlog)
                data = bytes(link.backlog[:n])
                del link.backlog[:n]
                self.tk.link_data(channel, data)
            elif link.closing:
                link.closing = False
                self.tk.link_closed(channel)
