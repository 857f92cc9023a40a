"""Name the APDUs and SIM Toolkit messages of a provisioning run, for the demo's transcript.

Vocabulary: ETSI TS 102 221 v15 (UICC commands, §10 CAT APDUs), ISO/IEC 7816-4 (MANAGE
CHANNEL, SELECT, GET RESPONSE), ETSI TS 102 223 v15 (proactive commands, TERMINAL RESPONSE,
ENVELOPE), SAFE2-PROTOCOL.md (the SAFE2 applet's INS). Abbreviations: SW = status word,
TR = TERMINAL RESPONSE, BIP = Bearer Independent Protocol.

Decoding never raises: whatever cannot be understood is described as such (the transcript
must survive garbage, it is how a reader sees it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ztp import stk

__all__ = ["ApduDecoder", "ApduSummary", "describe_sw", "payload_kind"]

AID_SAFE2 = bytes([0xF0]) + b"podgsafe2" + bytes([0x01, 0x01])

# SAFE2 applet states SSSS (SAFE2-PROTOCOL.md; 0001 assumed, as in ztp.sim)
_STATE_NAMES = {0x0000: "idle", 0x0001: "busy", 0x0003: "done, no data",
                0x0007: "response data ready", 0x000F: "error"}

_SW_TEXT = {
    0x9000: "OK",
    0x6881: "logical channel not supported / not open",
    0x6A81: "function not supported (no free channel)",
    0x6A82: "file / applet not found",
    0x6D00: "INS not supported",
    0x6E00: "CLA not supported",
    0x6985: "conditions of use not satisfied",
    0x6700: "wrong length",
    0x6F00: "applet exception",
    0x6A86: "incorrect P1-P2",
    0x6B00: "wrong P1-P2",
    0x9300: "toolkit busy",
}


def describe_sw(sw: int) -> str:
    """Text for a status word (TS 102 221 §10.2)."""
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw in _SW_TEXT:
        return _SW_TEXT[sw]
    if sw1 == 0x91:
        return f"OK, proactive command pending ({sw2} bytes)"
    if sw1 == 0x61:
        return f"{sw2 or 256} bytes waiting (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le, re-send with Le={sw2}"
    return "error"


@dataclass(frozen=True)
class ApduSummary:
    """One APDU exchange, named. ``detail`` explains the data (may be empty)."""

    name: str
    detail: str
    sw: int | None  # None: the response was shorter than a status word
    sw_text: str
    toolkit: bool  # a SIM Toolkit APDU (CLA 80: TERMINAL PROFILE, FETCH, TR, ENVELOPE, STATUS)


def _hex(b: bytes, limit: int = 24) -> str:
    h = b.hex(" ").upper()
    if len(b) > limit:
        h = b[:limit].hex(" ").upper() + f" ... ({len(b)} bytes)"
    return h


def _channel(cla: int) -> int:
    # TS 102 221 §10.1.1: 0x0N / 0x8N / 0xAN channels 0-3; 0x4N / 0xCN / 0xEN channels 4-19
    if cla & 0x40:
        return 4 + (cla & 0x0F)
    return cla & 0x03


def payload_kind(data: bytes) -> str:
    """What a BIP payload looks like: a TLS record (RFC 8446 §5.1 content type; the first
    handshake message type is in clear only for ClientHello/ServerHello), else DNS/other."""
    if len(data) >= 6 and data[0] == 0x16 and data[1] == 0x03:
        return {0x01: "TLS ClientHello", 0x02: "TLS ServerHello"}.get(data[5], "TLS handshake")
    if len(data) >= 5 and data[0] == 0x17 and data[1:3] == b"\x03\x03":
        return "TLS encrypted records"
    if len(data) >= 5 and data[0] == 0x15 and data[1] == 0x03:
        return "TLS alert (clear)"
    if len(data) >= 12 and data[2] & 0x80 == 0 and data[4:6] == b"\x00\x01":
        return "DNS query"
    if len(data) >= 12 and data[2] & 0x80:
        return "DNS answer"
    return "data"


def _proactive(data: bytes) -> tuple[str, str]:
    try:
        cmd = stk.parse_proactive_command(data)
    except (stk.StkDecodeError, ValueError) as err:
        return "PROACTIVE COMMAND", f"undecodable: {err}"
    if isinstance(cmd, stk.OpenChannel):
        proto = "UDP" if cmd.transport == stk.TransportProtocol.UDP_CLIENT_REMOTE else "TCP"
        dest = str(cmd.destination) if cmd.destination is not None else "DNS server"
        extra = ", DNS server address requested" if cmd.dns_request else ""
        return "OPEN CHANNEL", f"{proto} to {dest}:{cmd.port}, buffer {cmd.buffer_size}{extra}"
    if isinstance(cmd, stk.SendData):
        mode = "immediate" if cmd.immediate else "store"
        return "SEND DATA", (f"channel {cmd.channel}, {len(cmd.data)} bytes ({mode}): "
                             f"{payload_kind(cmd.data)}")
    if isinstance(cmd, stk.ReceiveData):
        return "RECEIVE DATA", f"channel {cmd.channel}, up to {cmd.length} bytes"
    if isinstance(cmd, stk.CloseChannel):
        return "CLOSE CHANNEL", f"channel {cmd.channel}"
    if isinstance(cmd, stk.GetChannelStatus):
        return "GET CHANNEL STATUS", ""
    if isinstance(cmd, stk.TimerManagement):
        value = f" {cmd.value_s} s" if cmd.value_s is not None else ""
        return "TIMER MANAGEMENT", f"{cmd.action.name.lower()} timer {cmd.timer_id}{value}"
    return type(cmd).__name__.upper(), ""


def _terminal_response(data: bytes) -> str:
    try:
        tr = stk.parse_terminal_response(data)
    except (stk.StkDecodeError, ValueError) as err:
        return f"undecodable: {err}"
    try:
        what = stk.CommandType(tr.details.type).name.replace("_", " ")
    except ValueError:
        what = f"command {tr.details.type:02X}"
    try:
        result = stk.GeneralResult(tr.result.general).name.lower().replace("_", " ")
    except ValueError:
        result = f"result {tr.result.general:02X}"
    if tr.result.additional:
        result += f" ({tr.result.additional.hex().upper()})"
    parts = [f"{what}: {result}"]
    if tr.channel_data is not None:
        parts.append(f"{len(tr.channel_data)} bytes: {payload_kind(tr.channel_data)}")
    if tr.dns_servers:
        parts.append("DNS " + ", ".join(str(a) for a in tr.dns_servers))
    return "; ".join(parts)


def _envelope(data: bytes) -> tuple[str, str]:
    try:
        env = stk.parse_envelope(data)
    except (stk.StkDecodeError, ValueError) as err:
        return "ENVELOPE", f"undecodable: {err}"
    if isinstance(env, stk.EventDownload):
        ch = env.channel_status.channel
        if env.event == stk.Event.DATA_AVAILABLE:
            n = env.data_length
            more = "255 or more" if n == 255 else str(n)
            return "ENVELOPE EVENT", f"data available on channel {ch}: {more} bytes"
        return "ENVELOPE EVENT", f"channel {ch} status: link dropped"
    if isinstance(env, stk.TimerExpiration):
        return "ENVELOPE TIMER EXPIRATION", f"timer {env.timer_id}"
    return "ENVELOPE SMS-PP DOWNLOAD", f"{len(env.tpdu)}-byte TPDU"


class ApduDecoder:
    """Names each APDU exchange; remembers per channel what GET RESPONSE answers.

    ``describe(command, response)`` -> :class:`ApduSummary`. Stateful only for GET RESPONSE,
    which answers the previous command of its channel (the status poll or the config read).
    """

    def __init__(self) -> None:
        self._pending: dict[int, str] = {}  # channel -> what the 61xx data belongs to

    def describe(self, command: bytes, response: bytes) -> ApduSummary:
        sw = int.from_bytes(response[-2:], "big") if len(response) >= 2 else None
        sw_text = describe_sw(sw) if sw is not None else "no status word"
        data_out = response[:-2] if sw is not None else response
        if len(command) < 4:
            return ApduSummary("MALFORMED APDU", _hex(command), sw, sw_text, False)
        cla, ins, p1, p2 = command[0], command[1], command[2], command[3]
        body = command[5:] if len(command) > 5 else b""
        if (cla & 0xF0) == 0x80 and ins in (0x10, 0x12, 0x14, 0xC2, 0xF2):
            name, detail = self._toolkit(ins, p1, p2, body, data_out)
            return ApduSummary(name, detail, sw, sw_text, True)
        ch = _channel(cla)
        name, detail = self._iso(ch, ins, p1, p2, command, body, data_out)
        if sw is not None and sw >> 8 == 0x61:
            self._pending[ch] = name
        elif ins != 0xC0:
            self._pending.pop(ch, None)
        return ApduSummary(name, detail, sw, sw_text, False)

    def _toolkit(self, ins: int, p1: int, p2: int, body: bytes, out: bytes) -> tuple[str, str]:
        if ins == 0x10:
            return "TERMINAL PROFILE", f"{len(body)} bytes: BIP (TCP/UDP client), timers"
        if ins == 0x12:
            if not out:
                return "FETCH", "nothing returned"
            name, detail = _proactive(out)
            return f"FETCH -> {name}", detail
        if ins == 0x14:
            return "TERMINAL RESPONSE", _terminal_response(body)
        if ins == 0xC2:
            return _envelope(body)
        if ins == 0xF2:
            return "STATUS", "toolkit poll"
        return f"CAT INS {ins:02X}", ""

    def _iso(self, ch: int, ins: int, p1: int, p2: int, command: bytes, body: bytes,
             out: bytes) -> tuple[str, str]:
        on = f"channel {ch}"
        if ins == 0x70:
            if p1 == 0x00:
                got = f" -> channel {out[0]}" if len(out) == 1 else ""
                return "MANAGE CHANNEL", f"open{got}"
            return "MANAGE CHANNEL", f"close channel {p2}"
        if ins == 0xA4:
            if body == AID_SAFE2:
                return "SELECT SAFE2", f"{on}, AID {body.hex().upper()}"
            if body == b"\x2f\xe2":
                return "SELECT EF_ICCID", on
            return "SELECT", f"{on}, {_hex(body)}"
        if ins == 0xB0:
            return "READ BINARY", f"{on}, {_hex(out)}"
        if ins == 0xDA and (p1, p2) == (0x02, 0xC0):
            return "SET DEVICEID", f"{on}, {body.hex()}"
        if ins == 0xDA and (p1, p2) == (0x02, 0xC1):
            return "SEND TELEMETRY", f"{on}, {len(body)} bytes"
        if ins == 0xCA and (p1, p2) == (0x00, 0x00):
            return "START CONFIG REQUEST", f"{on}: the SIM fetches the configuration"
        if ins == 0xCA and (p1, p2) == (0x01, 0x00):
            return "READ CONFIG", on
        if ins == 0xCC and (p1, p2) == (0x02, 0x00):
            return "GET STATUS", on
        if ins == 0xC0:
            what = self._pending.pop(ch, "")
            if what == "GET STATUS" and len(out) == 4:
                state = int.from_bytes(out[:2], "big")
                result = int.from_bytes(out[2:], "big")
                name = _STATE_NAMES.get(state, "working")
                return "GET RESPONSE", f"status {state:04X} ({name}), result {result:04X}"
            if what == "READ CONFIG":
                return "GET RESPONSE", f"configuration body, {len(out)} bytes"
            return "GET RESPONSE", f"{on}, {len(out)} bytes"
        return f"INS {ins:02X}", _hex(command)
