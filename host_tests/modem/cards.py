"""A small card for the driver tests: a UICC subset plus a toolkit applet doing one BIP fetch.

It answers faithfully for the APDUs the tests use (ETSI TS 102 221 / TS 102 223):
TERMINAL PROFILE, SELECT EF_ICCID + READ BINARY, MANAGE CHANNEL open, FETCH, TERMINAL RESPONSE,
ENVELOPE. ``00 CA 00 00 00`` starts the applet's job: open a TCP channel to ``server``, send
``request``, read the reply until the server closes, then close the channel. ``00 CC 00 00 00``
returns the reply so far. While a proactive command is pending every answer ends in 91xx.
"""

from __future__ import annotations

import ipaddress

from ztp import stk
from ztp.iccid import build_ef_iccid

ICCID = "8944502509186389635"


class BipCard:
    def __init__(self, server: tuple[str, int], request: bytes = b"ping",
                 *, dns_name: bytes | None = None) -> None:
        self.server = server
        self.request = request
        self.reset_count = 0
        self.profile: bytes | None = None
        self.reply = bytearray()
        self.results: list[stk.TerminalResponse] = []
        self.envelopes: list[stk.Envelope] = []
        self.apdus: list[bytes] = []
        self._queue: list[stk.ProactiveCommand] = []
        self._sent: stk.ProactiveCommand | None = None
        self._number = 0
        self.channel: int | None = None
        self.done = False

    def reset(self) -> bytes:
        self.reset_count += 1
        self._queue.clear()
        self._sent = None
        self.channel = None
        return bytes.fromhex("3B9F96801FC78031E073FE211B63F100828301900011")

    def _sw(self) -> bytes:
        if self._sent is None and self._queue:
            self._sent = self._queue.pop(0)
        if self._sent is not None:
            return b"\x91" + bytes([len(stk.build_proactive_command(self._sent))])
        return b"\x90\x00"

    def _next_number(self) -> int:
        self._number = self._number % 0xFE + 1
        return self._number

    def transmit(self, apdu: bytes, now_ms: int) -> bytes:
        self.apdus.append(apdu)
        cla, ins = apdu[0], apdu[1]
        if cla == 0x80 and ins == stk.INS_TERMINAL_PROFILE:
            self.profile = apdu[5:]
            return b"\x90\x00"
        if apdu == bytes.fromhex("00A4000C022FE2"):
            return b"\x90\x00"
        if apdu == bytes.fromhex("00B000000A"):
            return build_ef_iccid(ICCID) + self._sw()
        if apdu == bytes.fromhex("0070000001"):
            return b"\x01" + self._sw()
        if cla == 0x00 and ins == 0xCA:
            host, port = self.server
            self._queue.append(stk.OpenChannel(
                self._next_number(), 1024, stk.TransportProtocol.TCP_CLIENT_REMOTE, port,
                ipaddress.IPv4Address(host)))
            return self._sw()
        if cla == 0x00 and ins == 0xCC:
            return bytes(self.reply) + self._sw()
        if cla == 0x80 and ins == stk.INS_FETCH:
            if self._sent is None:
                return b"\x6F\x00"
            raw = stk.build_proactive_command(self._sent)
            if apdu[4] != len(raw):
                return b"\x67\x00"
            return raw + b"\x90\x00"
        if cla == 0x80 and ins == stk.INS_TERMINAL_RESPONSE:
            tr = stk.parse_terminal_response(apdu[5:])
            self.results.append(tr)
            self._on_tr(tr)
            return self._sw()
        if cla == 0x80 and ins == stk.INS_ENVELOPE:
            env = stk.parse_envelope(apdu[5:])
            self.envelopes.append(env)
            self._on_envelope(env)
            return self._sw()
        return b"\x6D\x00"

    def _on_tr(self, tr: stk.TerminalResponse) -> None:
        cmd, self._sent = self._sent, None
        if isinstance(cmd, stk.OpenChannel) and tr.result.ok:
            self.channel = tr.channel_status[0].channel
            self._queue.append(stk.SendData(self._next_number(), self.channel, self.request))
        elif isinstance(cmd, stk.ReceiveData) and tr.channel_data:
            self.reply += tr.channel_data
            if tr.channel_data_length:
                self._queue.append(stk.ReceiveData(self._next_number(), cmd.channel, 237))
        elif isinstance(cmd, stk.CloseChannel):
            self.channel = None
            self.done = True

    def _on_envelope(self, env: stk.Envelope) -> None:
        if self.channel is None or not isinstance(env, stk.EventDownload):
            return
        if env.event == stk.Event.DATA_AVAILABLE:
            self._queue.append(stk.ReceiveData(self._next_number(), self.channel,
                                               min(env.data_length or 1, 237)))
        elif env.event == stk.Event.CHANNEL_STATUS:
            self._queue.append(stk.CloseChannel(self._next_number(), self.channel))
