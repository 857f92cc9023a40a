"""SIM Toolkit codec: proactive commands, TERMINAL RESPONSE and ENVELOPE (build + parse, strict).

Implements the subset of ETSI TS 102 223 (CAT, v15) that the virtual SIM and the virtual modem
exchange for the Bearer Independent Protocol (BIP), timers and SMS-PP download, plus the
ETSI TS 102 221 (v15) §10 CAT APDUs that carry them.

Abbreviations: CAT = Card Application Toolkit; BIP = Bearer Independent Protocol; CR =
comprehension required (bit 8 of a COMPREHENSION-TLV tag, TS 102 223 §7); TR = TERMINAL
RESPONSE; UICC = the card; ME/terminal = the modem.

Theory of operation
-------------------
A proactive command (FETCH answer) is the BER-TLV ``D0 L <COMPREHENSION-TLVs>``; a TERMINAL
RESPONSE is a bare sequence of COMPREHENSION-TLVs; an ENVELOPE is a BER-TLV (``D1`` SMS-PP
download, ``D6`` event download, ``D7`` timer expiration). Each message is a frozen dataclass,
validated when built. ``build_x(msg) -> bytes`` and ``parse_x(data) -> msg`` come in pairs:

    build_proactive_command(cmd) / parse_proactive_command(data)    # D0 ...
    build_terminal_response(tr)  / parse_terminal_response(data)
    build_envelope(env)          / parse_envelope(data)             # D1 / D6 / D7
    build_terminal_profile_apdu, build_fetch_apdu, build_terminal_response_apdu,
    build_envelope_apdu          # TS 102 221 §10 command APDUs (CLA 80)

Parsing is strict: exact lengths, minimal length encodings, no trailing bytes, objects in the
order the spec gives (TS 102 223 §6.5: "the terminal ... shall ... in the order"), mandatory
objects present, duplicates refused. Unknown objects are skipped when their CR flag is clear and
refused when it is set (TS 102 223 §6.10: "If the terminal receives a ... data object that it
does not understand with the CR flag set ... command data not understood"). Every parse error
is a :class:`StkDecodeError` (the remote side's fault); invalid field values given to a
constructor raise :class:`ValueError` (local misuse).

Project conventions (where TS 102 223 leaves a choice; the virtual SIM relies on them)
-------------------------------------------------------------------------------------
- DNS: the applet opens a *UDP client remote* channel to port 53 with "DNS server address
  requested" (qualifier b4) and **no data destination address**; the terminal returns the DNS
  server address(es) in the TR and connects the channel to the first one. (With a destination
  given, the terminal uses it and still returns the DNS addresses.)
- No SET UP EVENT LIST is issued: the terminal reports data available / channel status for the
  BIP channels the card opened (TS 102 223 §4.7 makes those events part of BIP).
- SEND DATA: all chunks but the last in store mode (qualifier 0), the last one immediate.
- RECEIVE DATA asks for at most 237 bytes (what fits one TR); the TR's channel data length
  says how many bytes are still waiting (255 = 255 or more).
- Timers: identifier 1 = the applet's per-attempt watchdog, 2 = retry backoff.

Example (terminal side, the modem)::

    cmd = parse_proactive_command(fetched)          # OpenChannel(...)
    tr = TerminalResponse.for_command(cmd, Result(GeneralResult.PERFORMED_SUCCESSFULLY),
                                      channel_status=(ChannelStatus(1, True),),
                                      bearer=cmd.bearer, buffer_size=cmd.buffer_size)
    apdu = build_terminal_response_apdu(build_terminal_response(tr))
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple, TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

__all__ = [
    "AddressType",
    "BIP_FEATURES",
    "Feature",
    "peek_command_details",
    "Bearer",
    "BearerType",
    "BipError",
    "ChannelStatus",
    "CloseChannel",
    "CommandDetails",
    "CommandType",
    "Device",
    "Event",
    "EventDownload",
    "GeneralResult",
    "GetChannelStatus",
    "IPAddress",
    "OpenChannel",
    "ProactiveCommand",
    "ProfileFeature",
    "ReceiveData",
    "Result",
    "SendData",
    "SmsPpDownload",
    "StkDecodeError",
    "StkError",
    "Tag",
    "TerminalResponse",
    "TimerAction",
    "TimerExpiration",
    "TimerManagement",
    "TransportProtocol",
    "Envelope",
    "BerTag",
    "CLA_CAT",
    "INS_ENVELOPE",
    "INS_FETCH",
    "INS_TERMINAL_PROFILE",
    "INS_TERMINAL_RESPONSE",
    "build_envelope",
    "build_envelope_apdu",
    "build_fetch_apdu",
    "build_proactive_command",
    "build_terminal_profile",
    "build_terminal_profile_apdu",
    "build_terminal_response",
    "build_terminal_response_apdu",
    "channel_device",
    "decode_timer_value",
    "encode_timer_value",
    "parse_envelope",
    "parse_proactive_command",
    "parse_terminal_profile",
    "parse_terminal_response",
    "profile_supports",
]


class StkError(Exception):
    """Base class of SIM Toolkit codec errors."""


class StkDecodeError(StkError, ValueError):
    """Bytes from the other side are not a valid CAT message (remote misbehaviour)."""


# TS 102 221 §10.1 / Table 10.5: CAT command APDUs (class '80').
CLA_CAT = 0x80
INS_TERMINAL_PROFILE = 0x10
INS_FETCH = 0x12
INS_TERMINAL_RESPONSE = 0x14
INS_ENVELOPE = 0xC2


class BerTag(IntEnum):
    """BER-TLV tags, TS 101 220 §7.2 (used by TS 102 223 §9.1)."""

    PROACTIVE_COMMAND = 0xD0
    SMS_PP_DOWNLOAD = 0xD1
    EVENT_DOWNLOAD = 0xD6
    TIMER_EXPIRATION = 0xD7


class Tag(IntEnum):
    """COMPREHENSION-TLV tags without the CR bit, TS 102 223 §9.3 / TS 101 220 §7.3."""

    COMMAND_DETAILS = 0x01
    DEVICE_IDENTITIES = 0x02
    RESULT = 0x03
    ALPHA_IDENTIFIER = 0x05
    ADDRESS = 0x06
    SMS_TPDU = 0x0B
    EVENT_LIST = 0x19
    TIMER_IDENTIFIER = 0x24
    TIMER_VALUE = 0x25
    BEARER_DESCRIPTION = 0x35
    CHANNEL_DATA = 0x36
    CHANNEL_DATA_LENGTH = 0x37
    CHANNEL_STATUS = 0x38
    BUFFER_SIZE = 0x39
    TRANSPORT_LEVEL = 0x3C  # UICC/terminal interface transport level
    OTHER_ADDRESS = 0x3E
    DNS_SERVER_ADDRESS = 0x40
    NETWORK_ACCESS_NAME = 0x47


_CR = 0x80


class CommandType(IntEnum):
    """Type of command, TS 102 223 §9.4."""

    TIMER_MANAGEMENT = 0x27
    OPEN_CHANNEL = 0x40
    CLOSE_CHANNEL = 0x41
    RECEIVE_DATA = 0x42
    SEND_DATA = 0x43
    GET_CHANNEL_STATUS = 0x44


class Device(IntEnum):
    """Device identities, TS 102 223 §8.7 (channels 1..7 are 0x21..0x27: see channel_device)."""

    KEYPAD = 0x01
    DISPLAY = 0x02
    EARPIECE = 0x03
    UICC = 0x81
    TERMINAL = 0x82
    NETWORK = 0x83


def channel_device(channel: int) -> int:
    """Device identity of BIP channel 1..7 (TS 102 223 §8.7: '21' to '27')."""
    if not 1 <= channel <= 7:
        raise ValueError(f"channel identifier must be 1..7, got {channel}")
    return 0x20 + channel


class GeneralResult(IntEnum):
    """General result, TS 102 223 §8.12 (the subset a BIP terminal uses)."""

    PERFORMED_SUCCESSFULLY = 0x00
    PERFORMED_PARTIAL_COMPREHENSION = 0x01
    PERFORMED_MISSING_INFORMATION = 0x02
    PERFORMED_WITH_MODIFICATION = 0x07
    SESSION_TERMINATED_BY_USER = 0x10
    TERMINAL_UNABLE_NOW = 0x20
    NETWORK_UNABLE_NOW = 0x21
    USER_DID_NOT_ACCEPT = 0x22
    BEYOND_TERMINAL_CAPABILITIES = 0x30
    COMMAND_TYPE_NOT_UNDERSTOOD = 0x31
    COMMAND_DATA_NOT_UNDERSTOOD = 0x32
    COMMAND_NUMBER_NOT_KNOWN = 0x33
    REQUIRED_VALUES_MISSING = 0x36
    BIP_ERROR = 0x3A

    @property
    def is_success(self) -> bool:
        """'0X' results: the command was performed (TS 102 223 §8.12)."""
        return self.value < 0x10


class BipError(IntEnum):
    """Additional information for BIP_ERROR, TS 102 223 §8.12.11."""

    NO_SPECIFIC_CAUSE = 0x00
    NO_CHANNEL_AVAILABLE = 0x01
    CHANNEL_CLOSED = 0x02
    CHANNEL_ID_NOT_VALID = 0x03
    BUFFER_SIZE_NOT_AVAILABLE = 0x04
    SECURITY_ERROR = 0x05
    TRANSPORT_LEVEL_NOT_AVAILABLE = 0x06
    REMOTE_DEVICE_NOT_REACHABLE = 0x07
    SERVICE_ERROR = 0x08
    SERVICE_IDENTIFIER_UNKNOWN = 0x09


class BearerType(IntEnum):
    """Bearer type, TS 102 223 §8.52."""

    CSD = 0x01
    GPRS = 0x02  # GPRS / UTRAN packet service / E-UTRAN
    DEFAULT = 0x03  # default bearer for the requested transport layer
    E_UTRAN = 0x0B


class TransportProtocol(IntEnum):
    """Transport protocol type, TS 102 223 §8.59."""

    UDP_CLIENT_REMOTE = 0x01
    TCP_CLIENT_REMOTE = 0x02
    TCP_SERVER = 0x03
    UDP_CLIENT_LOCAL = 0x04
    TCP_CLIENT_LOCAL = 0x05


class AddressType(IntEnum):
    """Type of address in Other address / DNS server address, TS 102 223 §8.58."""

    IPV4 = 0x21
    IPV6 = 0x57


class Event(IntEnum):
    """Event list values, TS 102 223 §8.25."""

    DATA_AVAILABLE = 0x09
    CHANNEL_STATUS = 0x0A


class TimerAction(IntEnum):
    """TIMER MANAGEMENT command qualifier bits 1-2, TS 102 223 §8.6."""

    START = 0x00
    DEACTIVATE = 0x01
    GET_CURRENT_VALUE = 0x02


# Channel status byte 2 (TS 102 223 §8.56).
CHANNEL_STATUS_NO_FURTHER_INFO = 0x00
CHANNEL_STATUS_LINK_DROPPED = 0x05


# --------------------------------------------------------------------------- TLV primitives


def _push_length(n: int) -> bytes:
    # TS 102 223 Annex C / TS 101 220 §7.1.2: '00'-'7F' in one byte, '80'-'FF' as '81' xx.
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    raise ValueError(f"CAT object too long: {n} bytes (at most 255)")


def _pull_length(data: bytes, pos: int, what: str) -> tuple[int, int]:
    if pos >= len(data):
        raise StkDecodeError(f"{what}: length missing")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    if first == 0x81:
        if pos + 1 >= len(data):
            raise StkDecodeError(f"{what}: length byte after 81 missing")
        n = data[pos + 1]
        if n < 0x80:
            raise StkDecodeError(f"{what}: non-minimal length 81 {n:02X}")
        return n, pos + 2
    raise StkDecodeError(f"{what}: unsupported length byte {first:02X} (expected 00-7F or 81)")


def _tlv(tag: int, value: bytes, cr: bool = False) -> bytes:
    return bytes([tag | (_CR if cr else 0)]) + _push_length(len(value)) + value


@dataclass(frozen=True)
class _RawTlv:
    tag: int  # without CR
    cr: bool
    value: bytes


def _split_tlvs(data: bytes, what: str) -> list[_RawTlv]:
    out: list[_RawTlv] = []
    pos = 0
    while pos < len(data):
        t = data[pos]
        if t in (0x00, 0xFF, 0x80):
            raise StkDecodeError(f"{what}: invalid COMPREHENSION-TLV tag {t:02X}")
        if t & 0x7F == 0x7F:
            raise StkDecodeError(f"{what}: three-byte COMPREHENSION-TLV tags are not supported")
        n, pos = _pull_length(data, pos + 1, f"{what} tag {t:02X}")
        if pos + n > len(data):
            raise StkDecodeError(
                f"{what}: tag {t:02X} announces {n} bytes, only {len(data) - pos} left"
            )
        out.append(_RawTlv(t & 0x7F, bool(t & _CR), data[pos : pos + n]))
        pos += n
    return out


@dataclass(frozen=True)
class _Slot:
    tag: Tag
    required: bool = False
    repeat: bool = False


def _match(tlvs: Sequence[_RawTlv], schema: Sequence[_Slot], what: str) -> list[list[bytes]]:
    """Assign TLVs to schema slots in spec order; returns the values found for each slot."""
    found: list[list[bytes]] = [[] for _ in schema]
    known = {s.tag for s in schema}
    i = 0
    for tlv in tlvs:
        if tlv.tag not in known:
            if tlv.cr:
                raise StkDecodeError(f"{what}: unknown object {tlv.tag:02X} with CR flag set")
            continue  # TS 102 223 §6.10: unknown object without CR is ignored
        while i < len(schema):
            slot = schema[i]
            if slot.tag == tlv.tag and (not found[i] or slot.repeat):
                found[i].append(tlv.value)
                break
            i += 1
        else:
            raise StkDecodeError(f"{what}: object {tlv.tag:02X} duplicated or out of order")
    for slot, values in zip(schema, found, strict=True):
        if slot.required and not values:
            raise StkDecodeError(f"{what}: mandatory object {slot.tag.name} missing")
    return found


def _one(values: list[bytes]) -> bytes | None:
    return values[0] if values else None


def _ber(data: bytes, what: str) -> tuple[int, bytes]:
    if len(data) < 2:
        raise StkDecodeError(f"{what}: {len(data)} bytes, too short for a BER-TLV")
    n, pos = _pull_length(data, 1, what)
    if pos + n != len(data):
        raise StkDecodeError(
            f"{what}: BER-TLV {data[0]:02X} announces {n} bytes, {len(data) - pos} present"
        )
    return data[0], data[pos:]


def _u8(v: int, name: str, lo: int = 0, hi: int = 0xFF) -> None:
    if not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{name} must be {lo}..{hi}, got {v!r}")


# --------------------------------------------------------------------------- data objects


@dataclass(frozen=True)
class CommandDetails:
    """Command details, TS 102 223 §8.6: number '01'-'FE', type of command, qualifier."""

    number: int
    type: int
    qualifier: int

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 0x01, 0xFE)
        _u8(self.type, "type of command")
        _u8(self.qualifier, "command qualifier")

    def encode(self) -> bytes:
        return _tlv(Tag.COMMAND_DETAILS, bytes([self.number, self.type, self.qualifier]), True)

    @classmethod
    def decode(cls, v: bytes) -> CommandDetails:
        if len(v) != 3:
            raise StkDecodeError(f"command details: expected 3 bytes, got {len(v)}")
        try:
            return cls(v[0], v[1], v[2])
        except ValueError as e:
            raise StkDecodeError(f"command details: {e}") from None


def _devices(source: int, dest: int) -> bytes:
    return _tlv(Tag.DEVICE_IDENTITIES, bytes([source, dest]), True)


def _check_devices(v: bytes, source: int, dest: int | None, what: str) -> int:
    if len(v) != 2:
        raise StkDecodeError(f"{what}: device identities: expected 2 bytes, got {len(v)}")
    if v[0] != source or (dest is not None and v[1] != dest):
        want = f"{source:02X} {dest:02X}" if dest is not None else f"{source:02X} xx"
        raise StkDecodeError(f"{what}: device identities: expected {want}, got {v.hex(' ')}")
    return v[1]


def _channel_from_device(dev: int, what: str) -> int:
    if not 0x21 <= dev <= 0x27:
        raise StkDecodeError(f"{what}: destination {dev:02X} is not a channel (21-27)")
    return dev - 0x20


@dataclass(frozen=True)
class Bearer:
    """Bearer description, TS 102 223 §8.52: bearer type and its parameters."""

    type: int = BearerType.DEFAULT
    parameters: bytes = b""

    def __post_init__(self) -> None:
        _u8(self.type, "bearer type")
        if len(self.parameters) > 32:
            raise ValueError("bearer parameters longer than 32 bytes")

    def encode(self) -> bytes:
        return _tlv(Tag.BEARER_DESCRIPTION, bytes([self.type]) + self.parameters, True)

    @classmethod
    def decode(cls, v: bytes) -> Bearer:
        if not 1 <= len(v) <= 33:
            raise StkDecodeError(f"bearer description: bad length {len(v)}")
        return cls(v[0], bytes(v[1:]))


def _encode_address(tag: Tag, addr: IPAddress) -> bytes:
    t = AddressType.IPV4 if addr.version == 4 else AddressType.IPV6
    return _tlv(tag, bytes([t]) + addr.packed, tag != Tag.OTHER_ADDRESS)


def _decode_address(v: bytes, what: str) -> IPAddress:
    if len(v) == 5 and v[0] == AddressType.IPV4:
        return ipaddress.IPv4Address(v[1:])
    if len(v) == 17 and v[0] == AddressType.IPV6:
        return ipaddress.IPv6Address(v[1:])
    raise StkDecodeError(f"{what}: expected IPv4 (21 + 4 bytes) or IPv6 (57 + 16), got {v.hex()}")


def _check_address(addr: object, name: str) -> None:
    if not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
        raise ValueError(f"{name} must be an ipaddress.IPv4Address/IPv6Address, got {addr!r}")


@dataclass(frozen=True)
class ChannelStatus:
    """Channel status, TS 102 223 §8.56 (packet data / TCP layout).

    Byte 1: bits 1-3 channel identifier, bit 8 link (PDP context / TCP connection) established.
    Byte 2: further information ('00' none, '05' link dropped).
    """

    channel: int
    established: bool
    further_info: int = CHANNEL_STATUS_NO_FURTHER_INFO

    def __post_init__(self) -> None:
        _u8(self.channel, "channel identifier", 0, 7)
        _u8(self.further_info, "channel status further information")

    def pack(self) -> bytes:
        return bytes([self.channel | (0x80 if self.established else 0), self.further_info])

    def encode(self) -> bytes:
        return _tlv(Tag.CHANNEL_STATUS, self.pack(), True)

    @classmethod
    def decode(cls, v: bytes) -> ChannelStatus:
        if len(v) != 2:
            raise StkDecodeError(f"channel status: expected 2 bytes, got {len(v)}")
        if v[0] & 0x78:
            raise StkDecodeError(f"channel status: RFU bits set in {v[0]:02X}")
        return cls(v[0] & 0x07, bool(v[0] & 0x80), v[1])


@dataclass(frozen=True)
class Result:
    """Result, TS 102 223 §8.12: general result + additional information."""

    general: int
    additional: bytes = b""

    def __post_init__(self) -> None:
        _u8(self.general, "general result")
        if len(self.additional) > 64:
            raise ValueError("result additional information longer than 64 bytes")

    @property
    def ok(self) -> bool:
        return self.general < 0x10

    def encode(self) -> bytes:
        return _tlv(Tag.RESULT, bytes([self.general]) + self.additional, True)

    @classmethod
    def decode(cls, v: bytes) -> Result:
        if not 1 <= len(v) <= 65:
            raise StkDecodeError(f"result: bad length {len(v)}")
        return cls(v[0], bytes(v[1:]))


def encode_timer_value(seconds: int) -> bytes:
    """Timer value, TS 102 223 §8.38: hours, minutes, seconds as nibble-swapped BCD (TS 23.040)."""
    if not isinstance(seconds, int) or not 0 <= seconds < 24 * 3600:
        raise ValueError(f"timer value must be 0..86399 s, got {seconds!r}")
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return bytes(((x % 10) << 4) | (x // 10) for x in (h, m, s))


def decode_timer_value(v: bytes) -> int:
    """Inverse of :func:`encode_timer_value`; raises StkDecodeError on bad BCD."""
    if len(v) != 3:
        raise StkDecodeError(f"timer value: expected 3 bytes, got {len(v)}")
    parts = []
    for b in v:
        lo, hi = b & 0x0F, b >> 4
        if lo > 9 or hi > 9:
            raise StkDecodeError(f"timer value: bad BCD byte {b:02X}")
        parts.append(lo * 10 + hi)
    h, m, s = parts
    if h > 23 or m > 59 or s > 59:
        raise StkDecodeError(f"timer value: {h:02d}:{m:02d}:{s:02d} out of range")
    return h * 3600 + m * 60 + s


def _decode_u16(v: bytes, what: str) -> int:
    if len(v) != 2:
        raise StkDecodeError(f"{what}: expected 2 bytes, got {len(v)}")
    return int.from_bytes(v, "big")


def _decode_u8(v: bytes, what: str) -> int:
    if len(v) != 1:
        raise StkDecodeError(f"{what}: expected 1 byte, got {len(v)}")
    return v[0]


# --------------------------------------------------------------------------- proactive commands


@dataclass(frozen=True)
class OpenChannel:
    """OPEN CHANNEL for a packet data / default bearer, TS 102 223 §6.6.27.

    Qualifier bits (§8.6): b1 immediate link establishment, b2 automatic reconnection,
    b3 background mode, b4 DNS server address(es) requested.

    ``transport`` is the UICC/terminal interface transport level (protocol, port);
    ``destination`` the data destination address (an "Other address" after it).
    """

    number: int
    buffer_size: int
    transport: TransportProtocol
    port: int
    destination: IPAddress | None = None
    bearer: Bearer = field(default_factory=Bearer)
    immediate: bool = True
    auto_reconnect: bool = False
    background: bool = False
    dns_request: bool = False
    network_access_name: bytes | None = None
    alpha: bytes | None = None

    TYPE = CommandType.OPEN_CHANNEL

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)
        if not isinstance(self.buffer_size, int) or not 1 <= self.buffer_size <= 0xFFFF:
            raise ValueError(f"buffer size must be 1..65535, got {self.buffer_size!r}")
        TransportProtocol(self.transport)
        if not isinstance(self.port, int) or not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {self.port!r}")
        if self.destination is not None:
            _check_address(self.destination, "destination")

    @property
    def details(self) -> CommandDetails:
        q = (
            (1 if self.immediate else 0)
            | (2 if self.auto_reconnect else 0)
            | (4 if self.background else 0)
            | (8 if self.dns_request else 0)
        )
        return CommandDetails(self.number, self.TYPE, q)

    def _body(self) -> bytes:
        out = self.details.encode() + _devices(Device.UICC, Device.TERMINAL)
        if self.alpha is not None:
            out += _tlv(Tag.ALPHA_IDENTIFIER, self.alpha)
        out += self.bearer.encode()
        out += _tlv(Tag.BUFFER_SIZE, self.buffer_size.to_bytes(2, "big"), True)
        if self.network_access_name is not None:
            out += _tlv(Tag.NETWORK_ACCESS_NAME, self.network_access_name)
        out += _tlv(Tag.TRANSPORT_LEVEL, bytes([self.transport]) + self.port.to_bytes(2, "big"))
        if self.destination is not None:
            out += _encode_address(Tag.OTHER_ADDRESS, self.destination)
        return out

    _SCHEMA = (
        _Slot(Tag.ALPHA_IDENTIFIER),
        _Slot(Tag.BEARER_DESCRIPTION, required=True),
        _Slot(Tag.BUFFER_SIZE, required=True),
        _Slot(Tag.NETWORK_ACCESS_NAME),
        _Slot(Tag.OTHER_ADDRESS),  # local address: accepted only if absent (see below)
        _Slot(Tag.TRANSPORT_LEVEL, required=True),
        _Slot(Tag.OTHER_ADDRESS),  # data destination address
    )

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv]) -> OpenChannel:
        w = "OPEN CHANNEL"
        alpha, bearer, buf, nan, local, tl, dest = _match(tlvs, cls._SCHEMA, w)
        if local:
            raise StkDecodeError(f"{w}: local address before the transport level not supported")
        if d.qualifier & 0xF0:
            raise StkDecodeError(f"{w}: RFU qualifier bits set in {d.qualifier:02X}")
        tlv = tl[0]
        if len(tlv) != 3:
            raise StkDecodeError(f"{w}: transport level: expected 3 bytes, got {len(tlv)}")
        try:
            proto = TransportProtocol(tlv[0])
        except ValueError:
            raise StkDecodeError(f"{w}: unknown transport protocol {tlv[0]:02X}") from None
        size = _decode_u16(buf[0], f"{w}: buffer size")
        if size == 0:
            raise StkDecodeError(f"{w}: buffer size 0")
        return cls(
            number=d.number,
            buffer_size=size,
            transport=proto,
            port=int.from_bytes(tlv[1:3], "big"),
            destination=_decode_address(dest[0], f"{w}: destination") if dest else None,
            bearer=Bearer.decode(bearer[0]),
            immediate=bool(d.qualifier & 1),
            auto_reconnect=bool(d.qualifier & 2),
            background=bool(d.qualifier & 4),
            dns_request=bool(d.qualifier & 8),
            network_access_name=_one(nan),
            alpha=_one(alpha),
        )


@dataclass(frozen=True)
class CloseChannel:
    """CLOSE CHANNEL, TS 102 223 §6.6.28."""

    number: int
    channel: int

    TYPE = CommandType.CLOSE_CHANNEL

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)
        channel_device(self.channel)

    @property
    def details(self) -> CommandDetails:
        return CommandDetails(self.number, self.TYPE, 0)

    def _body(self) -> bytes:
        return self.details.encode() + _devices(Device.UICC, channel_device(self.channel))

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv], channel: int) -> CloseChannel:
        _match(tlvs, (), "CLOSE CHANNEL")
        return cls(d.number, channel)


@dataclass(frozen=True)
class ReceiveData:
    """RECEIVE DATA, TS 102 223 §6.6.29: ask the terminal for up to ``length`` bytes."""

    number: int
    channel: int
    length: int

    TYPE = CommandType.RECEIVE_DATA

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)
        channel_device(self.channel)
        _u8(self.length, "channel data length")

    @property
    def details(self) -> CommandDetails:
        return CommandDetails(self.number, self.TYPE, 0)

    def _body(self) -> bytes:
        return (
            self.details.encode()
            + _devices(Device.UICC, channel_device(self.channel))
            + _tlv(Tag.CHANNEL_DATA_LENGTH, bytes([self.length]), True)
        )

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv], channel: int) -> ReceiveData:
        schema = (_Slot(Tag.ALPHA_IDENTIFIER), _Slot(Tag.CHANNEL_DATA_LENGTH, required=True))
        _, n = _match(tlvs, schema, "RECEIVE DATA")
        return cls(d.number, channel, _decode_u8(n[0], "RECEIVE DATA: channel data length"))


@dataclass(frozen=True)
class SendData:
    """SEND DATA, TS 102 223 §6.6.30. ``immediate``: qualifier b1 (send now vs. store)."""

    number: int
    channel: int
    data: bytes
    immediate: bool = True

    TYPE = CommandType.SEND_DATA

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)
        channel_device(self.channel)
        # D0 81 L + 5 (details) + 4 (devices) + 3 (36 81 L) + data <= 255 + 3
        if not isinstance(self.data, bytes) or len(self.data) > 0xFF - 12:
            raise ValueError(f"SEND DATA carries at most 243 bytes, got {len(self.data)}")

    @property
    def details(self) -> CommandDetails:
        return CommandDetails(self.number, self.TYPE, 1 if self.immediate else 0)

    def _body(self) -> bytes:
        return (
            self.details.encode()
            + _devices(Device.UICC, channel_device(self.channel))
            + _tlv(Tag.CHANNEL_DATA, self.data, True)
        )

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv], channel: int) -> SendData:
        schema = (_Slot(Tag.ALPHA_IDENTIFIER), _Slot(Tag.CHANNEL_DATA, required=True))
        _, data = _match(tlvs, schema, "SEND DATA")
        if d.qualifier & 0xFE:
            raise StkDecodeError(f"SEND DATA: RFU qualifier bits set in {d.qualifier:02X}")
        return cls(d.number, channel, bytes(data[0]), bool(d.qualifier & 1))


@dataclass(frozen=True)
class GetChannelStatus:
    """GET CHANNEL STATUS, TS 102 223 §6.6.31."""

    number: int

    TYPE = CommandType.GET_CHANNEL_STATUS

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)

    @property
    def details(self) -> CommandDetails:
        return CommandDetails(self.number, self.TYPE, 0)

    def _body(self) -> bytes:
        return self.details.encode() + _devices(Device.UICC, Device.TERMINAL)

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv]) -> GetChannelStatus:
        _match(tlvs, (), "GET CHANNEL STATUS")
        return cls(d.number)


@dataclass(frozen=True)
class TimerManagement:
    """TIMER MANAGEMENT, TS 102 223 §6.6.21. ``value_s`` only (and always) with START."""

    number: int
    action: TimerAction
    timer_id: int
    value_s: int | None = None

    TYPE = CommandType.TIMER_MANAGEMENT

    def __post_init__(self) -> None:
        _u8(self.number, "command number", 1, 0xFE)
        TimerAction(self.action)
        _u8(self.timer_id, "timer identifier", 1, 8)
        if (self.action == TimerAction.START) != (self.value_s is not None):
            raise ValueError("TIMER MANAGEMENT: a timer value goes with START and only with it")
        if self.value_s is not None:
            encode_timer_value(self.value_s)

    @property
    def details(self) -> CommandDetails:
        return CommandDetails(self.number, self.TYPE, int(self.action))

    def _body(self) -> bytes:
        out = (
            self.details.encode()
            + _devices(Device.UICC, Device.TERMINAL)
            + _tlv(Tag.TIMER_IDENTIFIER, bytes([self.timer_id]), True)
        )
        if self.value_s is not None:
            out += _tlv(Tag.TIMER_VALUE, encode_timer_value(self.value_s), True)
        return out

    @classmethod
    def _decode(cls, d: CommandDetails, tlvs: list[_RawTlv]) -> TimerManagement:
        w = "TIMER MANAGEMENT"
        schema = (_Slot(Tag.TIMER_IDENTIFIER, required=True), _Slot(Tag.TIMER_VALUE))
        tid, val = _match(tlvs, schema, w)
        if d.qualifier > 2:
            raise StkDecodeError(f"{w}: bad qualifier {d.qualifier:02X}")
        action = TimerAction(d.qualifier)
        if (action == TimerAction.START) != bool(val):
            raise StkDecodeError(f"{w}: timer value present iff START, qualifier {d.qualifier}")
        timer_id = _decode_u8(tid[0], f"{w}: timer identifier")
        if not 1 <= timer_id <= 8:
            raise StkDecodeError(f"{w}: timer identifier {timer_id} not in 1..8")
        value = decode_timer_value(val[0]) if val else None
        return cls(d.number, action, timer_id, value)


ProactiveCommand: TypeAlias = (
    OpenChannel | CloseChannel | ReceiveData | SendData | GetChannelStatus | TimerManagement
)


def build_proactive_command(cmd: ProactiveCommand) -> bytes:
    """Encode a proactive command as the FETCH answer ``D0 L ...`` (TS 102 223 §6.6).

    Raises:
        ValueError: the command does not fit in 255 bytes.
    """
    body = cmd._body()
    return bytes([BerTag.PROACTIVE_COMMAND]) + _push_length(len(body)) + body


def parse_proactive_command(data: bytes) -> ProactiveCommand:
    """Decode a FETCH answer (without SW1 SW2).

    Returns:
        One of OpenChannel, CloseChannel, ReceiveData, SendData, GetChannelStatus,
        TimerManagement.

    Raises:
        StkDecodeError: not a well-formed proactive command of a supported type. A terminal
            answers COMMAND_TYPE_NOT_UNDERSTOOD / COMMAND_DATA_NOT_UNDERSTOOD; use
            :func:`peek_command_details` to get the details to echo.
    """
    tag, body = _ber(bytes(data), "proactive command")
    if tag != BerTag.PROACTIVE_COMMAND:
        raise StkDecodeError(f"proactive command: expected tag D0, got {tag:02X}")
    tlvs = _split_tlvs(body, "proactive command")
    if len(tlvs) < 2 or tlvs[0].tag != Tag.COMMAND_DETAILS or tlvs[1].tag != Tag.DEVICE_IDENTITIES:
        raise StkDecodeError("proactive command: must start with command details, device ids")
    d = CommandDetails.decode(tlvs[0].value)
    rest = tlvs[2:]
    what = f"proactive command {d.type:02X}"
    if d.type == CommandType.OPEN_CHANNEL:
        _check_devices(tlvs[1].value, Device.UICC, Device.TERMINAL, what)
        return OpenChannel._decode(d, rest)
    if d.type == CommandType.GET_CHANNEL_STATUS:
        _check_devices(tlvs[1].value, Device.UICC, Device.TERMINAL, what)
        return GetChannelStatus._decode(d, rest)
    if d.type == CommandType.TIMER_MANAGEMENT:
        _check_devices(tlvs[1].value, Device.UICC, Device.TERMINAL, what)
        return TimerManagement._decode(d, rest)
    per_channel = {
        CommandType.CLOSE_CHANNEL: CloseChannel,
        CommandType.RECEIVE_DATA: ReceiveData,
        CommandType.SEND_DATA: SendData,
    }
    if d.type in per_channel:
        dev = _check_devices(tlvs[1].value, Device.UICC, None, what)
        channel = _channel_from_device(dev, what)
        return per_channel[CommandType(d.type)]._decode(d, rest, channel)  # type: ignore[attr-defined]
    raise StkDecodeError(f"proactive command: unsupported type of command {d.type:02X}")


def peek_command_details(data: bytes) -> CommandDetails | None:
    """Best-effort command details of a (possibly unsupported) proactive command, for the TR.

    Returns None when even the command details cannot be read.
    """
    try:
        tag, body = _ber(bytes(data), "proactive command")
        tlvs = _split_tlvs(body, "proactive command")
        if tag == BerTag.PROACTIVE_COMMAND and tlvs and tlvs[0].tag == Tag.COMMAND_DETAILS:
            return CommandDetails.decode(tlvs[0].value)
    except StkDecodeError:
        pass
    return None


# --------------------------------------------------------------------------- TERMINAL RESPONSE


@dataclass(frozen=True)
class TerminalResponse:
    """TERMINAL RESPONSE, TS 102 223 §6.8, with the BIP/timer data objects.

    Objects are written in this order (the union of §6.8 for the supported commands): command
    details, device identities (terminal -> UICC), result, timer identifier, timer value,
    channel data, channel status (0..7), bearer description, buffer size, channel data length,
    DNS server address (0..n).

    Per command: OPEN CHANNEL -> channel_status, bearer, buffer_size[, dns_servers];
    SEND DATA -> channel_data_length (free Tx space, 255 = more); RECEIVE DATA -> channel_data,
    channel_data_length (bytes left, 255 = more); GET CHANNEL STATUS -> channel_status;
    TIMER MANAGEMENT -> timer_id[, timer_value_s].
    """

    details: CommandDetails
    result: Result
    channel_status: tuple[ChannelStatus, ...] = ()
    bearer: Bearer | None = None
    buffer_size: int | None = None
    channel_data: bytes | None = None
    channel_data_length: int | None = None
    dns_servers: tuple[IPAddress, ...] = ()
    timer_id: int | None = None
    timer_value_s: int | None = None

    def __post_init__(self) -> None:
        if self.buffer_size is not None and not 0 <= self.buffer_size <= 0xFFFF:
            raise ValueError(f"buffer size must be 0..65535, got {self.buffer_size}")
        if self.channel_data_length is not None:
            _u8(self.channel_data_length, "channel data length")
        if self.timer_id is not None:
            _u8(self.timer_id, "timer identifier", 1, 8)
        if self.timer_value_s is not None:
            encode_timer_value(self.timer_value_s)
        if len(self.channel_status) > 7:
            raise ValueError("at most 7 channel status objects")
        for a in self.dns_servers:
            _check_address(a, "DNS server address")

    @classmethod
    def for_command(cls, cmd: ProactiveCommand, result: Result, **kw: object) -> TerminalResponse:
        """The TR answering ``cmd`` (echoes its command details)."""
        return cls(cmd.details, result, **kw)  # type: ignore[arg-type]


_TR_SCHEMA = (
    _Slot(Tag.RESULT, required=True),
    _Slot(Tag.TIMER_IDENTIFIER),
    _Slot(Tag.TIMER_VALUE),
    _Slot(Tag.CHANNEL_DATA),
    _Slot(Tag.CHANNEL_STATUS, repeat=True),
    _Slot(Tag.BEARER_DESCRIPTION),
    _Slot(Tag.BUFFER_SIZE),
    _Slot(Tag.CHANNEL_DATA_LENGTH),
    _Slot(Tag.DNS_SERVER_ADDRESS, repeat=True),
)


def build_terminal_response(tr: TerminalResponse) -> bytes:
    """Encode the TERMINAL RESPONSE data field (the APDU body, TS 102 221 §10.1.3).

    Raises:
        ValueError: longer than 255 bytes.
    """
    out = tr.details.encode() + _devices(Device.TERMINAL, Device.UICC) + tr.result.encode()
    if tr.timer_id is not None:
        out += _tlv(Tag.TIMER_IDENTIFIER, bytes([tr.timer_id]), True)
    if tr.timer_value_s is not None:
        out += _tlv(Tag.TIMER_VALUE, encode_timer_value(tr.timer_value_s), True)
    if tr.channel_data is not None:
        out += _tlv(Tag.CHANNEL_DATA, tr.channel_data, True)
    for cs in tr.channel_status:
        out += cs.encode()
    if tr.bearer is not None:
        out += tr.bearer.encode()
    if tr.buffer_size is not None:
        out += _tlv(Tag.BUFFER_SIZE, tr.buffer_size.to_bytes(2, "big"), True)
    if tr.channel_data_length is not None:
        out += _tlv(Tag.CHANNEL_DATA_LENGTH, bytes([tr.channel_data_length]), True)
    for a in tr.dns_servers:
        out += _encode_address(Tag.DNS_SERVER_ADDRESS, a)
    if len(out) > 0xFF:
        raise ValueError(f"TERMINAL RESPONSE too long: {len(out)} bytes (at most 255)")
    return out


def parse_terminal_response(data: bytes) -> TerminalResponse:
    """Decode a TERMINAL RESPONSE data field.

    Raises:
        StkDecodeError: malformed, wrong device identities, objects out of order/duplicated.
    """
    data = bytes(data)
    if not 1 <= len(data) <= 0xFF:
        raise StkDecodeError(f"TERMINAL RESPONSE: bad length {len(data)}")
    tlvs = _split_tlvs(data, "TERMINAL RESPONSE")
    if len(tlvs) < 3 or tlvs[0].tag != Tag.COMMAND_DETAILS or tlvs[1].tag != Tag.DEVICE_IDENTITIES:
        raise StkDecodeError("TERMINAL RESPONSE: must start with command details, device ids")
    d = CommandDetails.decode(tlvs[0].value)
    _check_devices(tlvs[1].value, Device.TERMINAL, Device.UICC, "TERMINAL RESPONSE")
    res, tid, tval, cdata, cstat, bearer, buf, clen, dns = _match(
        tlvs[2:], _TR_SCHEMA, "TERMINAL RESPONSE"
    )
    w = "TERMINAL RESPONSE"
    timer_id = _decode_u8(tid[0], f"{w}: timer identifier") if tid else None
    if timer_id is not None and not 1 <= timer_id <= 8:
        raise StkDecodeError(f"{w}: timer identifier {timer_id} not in 1..8")
    return TerminalResponse(
        details=d,
        result=Result.decode(res[0]),
        channel_status=tuple(ChannelStatus.decode(v) for v in cstat),
        bearer=Bearer.decode(bearer[0]) if bearer else None,
        buffer_size=_decode_u16(buf[0], f"{w}: buffer size") if buf else None,
        channel_data=bytes(cdata[0]) if cdata else None,
        channel_data_length=_decode_u8(clen[0], f"{w}: channel data length") if clen else None,
        dns_servers=tuple(_decode_address(v, f"{w}: DNS server address") for v in dns),
        timer_id=timer_id,
        timer_value_s=decode_timer_value(tval[0]) if tval else None,
    )


# --------------------------------------------------------------------------- ENVELOPE


@dataclass(frozen=True)
class EventDownload:
    """ENVELOPE (EVENT DOWNLOAD) 'D6', TS 102 223 §7.5.10 (data available), §7.5.11 (channel
    status). ``data_length`` (bytes waiting, 255 = more) goes with DATA_AVAILABLE only."""

    event: Event
    channel_status: ChannelStatus
    data_length: int | None = None

    def __post_init__(self) -> None:
        Event(self.event)
        if (self.event == Event.DATA_AVAILABLE) != (self.data_length is not None):
            raise ValueError("EVENT DOWNLOAD: data_length goes with DATA_AVAILABLE only")
        if self.data_length is not None:
            _u8(self.data_length, "channel data length")


@dataclass(frozen=True)
class TimerExpiration:
    """ENVELOPE (TIMER EXPIRATION) 'D7', TS 102 223 §7.4."""

    timer_id: int
    value_s: int = 0

    def __post_init__(self) -> None:
        _u8(self.timer_id, "timer identifier", 1, 8)
        encode_timer_value(self.value_s)


@dataclass(frozen=True)
class SmsPpDownload:
    """ENVELOPE (SMS-PP DOWNLOAD) 'D1', TS 102 223 §7.1 / TS 31.111 §7.1.1.

    ``address``: the RP originating (service centre) address value, or None; ``tpdu``: the
    SMS-DELIVER TPDU (TS 23.040), opaque here.
    """

    tpdu: bytes
    address: bytes | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.tpdu) <= 0xFF - 8:
            raise ValueError(f"SMS TPDU must be 1..247 bytes, got {len(self.tpdu)}")


Envelope: TypeAlias = EventDownload | TimerExpiration | SmsPpDownload


def build_envelope(env: Envelope) -> bytes:
    """Encode an ENVELOPE data field (a BER-TLV).

    Raises:
        ValueError: longer than 255 bytes.
    """
    if isinstance(env, EventDownload):
        tag = BerTag.EVENT_DOWNLOAD
        body = (
            _tlv(Tag.EVENT_LIST, bytes([env.event]), True)
            + _devices(Device.TERMINAL, Device.UICC)
            + env.channel_status.encode()
        )
        if env.data_length is not None:
            body += _tlv(Tag.CHANNEL_DATA_LENGTH, bytes([env.data_length]), True)
    elif isinstance(env, TimerExpiration):
        tag = BerTag.TIMER_EXPIRATION
        body = (
            _devices(Device.TERMINAL, Device.UICC)
            + _tlv(Tag.TIMER_IDENTIFIER, bytes([env.timer_id]), True)
            + _tlv(Tag.TIMER_VALUE, encode_timer_value(env.value_s), True)
        )
    elif isinstance(env, SmsPpDownload):
        tag = BerTag.SMS_PP_DOWNLOAD
        body = _devices(Device.NETWORK, Device.UICC)
        if env.address is not None:
            body += _tlv(Tag.ADDRESS, env.address, True)
        body += _tlv(Tag.SMS_TPDU, env.tpdu, True)
    else:
        raise TypeError(f"not an envelope: {env!r}")
    out = bytes([tag]) + _push_length(len(body)) + body
    if len(out) > 0xFF:
        raise ValueError(f"ENVELOPE too long: {len(out)} bytes")
    return out


def parse_envelope(data: bytes) -> Envelope:
    """Decode an ENVELOPE data field (D1 / D6 with event 09 or 0A / D7).

    Raises:
        StkDecodeError: malformed or unsupported (the card answers 6A80 / 6F00 style errors).
    """
    tag, body = _ber(bytes(data), "ENVELOPE")
    tlvs = _split_tlvs(body, "ENVELOPE")
    if tag == BerTag.EVENT_DOWNLOAD:
        w = "EVENT DOWNLOAD"
        schema = (
            _Slot(Tag.EVENT_LIST, required=True),
            _Slot(Tag.DEVICE_IDENTITIES, required=True),
            _Slot(Tag.CHANNEL_STATUS, required=True),
            _Slot(Tag.BEARER_DESCRIPTION),
            _Slot(Tag.OTHER_ADDRESS),
            _Slot(Tag.CHANNEL_DATA_LENGTH),
        )
        ev, dev, cs, _bearer, _addr, dl = _match(tlvs, schema, w)
        _check_devices(dev[0], Device.TERMINAL, Device.UICC, w)
        if len(ev[0]) != 1:
            raise StkDecodeError(f"{w}: expected exactly one event, got {len(ev[0])}")
        try:
            event = Event(ev[0][0])
        except ValueError:
            raise StkDecodeError(f"{w}: unsupported event {ev[0][0]:02X}") from None
        if (event == Event.DATA_AVAILABLE) != bool(dl):
            raise StkDecodeError(f"{w}: channel data length goes with data available only")
        return EventDownload(
            event,
            ChannelStatus.decode(cs[0]),
            _decode_u8(dl[0], f"{w}: channel data length") if dl else None,
        )
    if tag == BerTag.TIMER_EXPIRATION:
        w = "TIMER EXPIRATION"
        schema = (
            _Slot(Tag.DEVICE_IDENTITIES, required=True),
            _Slot(Tag.TIMER_IDENTIFIER, required=True),
            _Slot(Tag.TIMER_VALUE, required=True),
        )
        dev, tid, tval = _match(tlvs, schema, w)
        _check_devices(dev[0], Device.TERMINAL, Device.UICC, w)
        timer_id = _decode_u8(tid[0], f"{w}: timer identifier")
        if not 1 <= timer_id <= 8:
            raise StkDecodeError(f"{w}: timer identifier {timer_id} not in 1..8")
        return TimerExpiration(timer_id, decode_timer_value(tval[0]))
    if tag == BerTag.SMS_PP_DOWNLOAD:
        w = "SMS-PP DOWNLOAD"
        schema = (
            _Slot(Tag.DEVICE_IDENTITIES, required=True),
            _Slot(Tag.ADDRESS),
            _Slot(Tag.SMS_TPDU, required=True),
        )
        dev, addr, tpdu = _match(tlvs, schema, w)
        _check_devices(dev[0], Device.NETWORK, Device.UICC, w)
        if not tpdu[0]:
            raise StkDecodeError(f"{w}: empty SMS TPDU")
        return SmsPpDownload(bytes(tpdu[0]), bytes(addr[0]) if addr else None)
    raise StkDecodeError(f"ENVELOPE: unsupported tag {tag:02X}")


# --------------------------------------------------------------------------- TERMINAL PROFILE


class ProfileFeature(NamedTuple):
    """(byte, bit) of a TERMINAL PROFILE facility, both 1-based, TS 102 223 §5.2."""

    byte: int
    bit: int


class _Features:
    # §5.2 byte 1 b6; byte 6 b3/b4; byte 8 b1/b2; byte 12 b1-b5; byte 13 b2; byte 17 b1/b2.
    TIMER_EXPIRATION = ProfileFeature(1, 6)
    EVENT_DATA_AVAILABLE = ProfileFeature(6, 3)
    EVENT_CHANNEL_STATUS = ProfileFeature(6, 4)
    TIMER_MANAGEMENT = ProfileFeature(8, 1)
    TIMER_GET_VALUE = ProfileFeature(8, 2)
    OPEN_CHANNEL = ProfileFeature(12, 1)
    CLOSE_CHANNEL = ProfileFeature(12, 2)
    RECEIVE_DATA = ProfileFeature(12, 3)
    SEND_DATA = ProfileFeature(12, 4)
    GET_CHANNEL_STATUS = ProfileFeature(12, 5)
    GPRS = ProfileFeature(13, 2)
    TCP_CLIENT_REMOTE = ProfileFeature(17, 1)
    UDP_CLIENT_REMOTE = ProfileFeature(17, 2)
    SMS_PP_DOWNLOAD = ProfileFeature(1, 2)


# Public namespace of features: ``Feature.OPEN_CHANNEL`` etc.
Feature = _Features
BIP_FEATURES: tuple[ProfileFeature, ...] = (
    Feature.OPEN_CHANNEL,
    Feature.CLOSE_CHANNEL,
    Feature.RECEIVE_DATA,
    Feature.SEND_DATA,
    Feature.GET_CHANNEL_STATUS,
    Feature.TCP_CLIENT_REMOTE,
    Feature.UDP_CLIENT_REMOTE,
    Feature.EVENT_DATA_AVAILABLE,
    Feature.EVENT_CHANNEL_STATUS,
)


def build_terminal_profile(features: Sequence[ProfileFeature], channels: int = 1) -> bytes:
    """TERMINAL PROFILE bytes announcing ``features``; ``channels`` = byte 13 b6-b8 (0..7).

    The profile is 17 bytes at least (enough for the BIP transport byte), longer only if a
    feature needs it.
    """
    if not 0 <= channels <= 7:
        raise ValueError(f"number of channels must be 0..7, got {channels}")
    size = max([17] + [b for b, _ in features])
    out = bytearray(size)
    for byte, bit in features:
        if not 1 <= bit <= 8 or byte < 1:
            raise ValueError(f"bad profile feature {(byte, bit)}")
        out[byte - 1] |= 1 << (bit - 1)
    out[12] |= channels << 5
    return bytes(out)


def parse_terminal_profile(profile: bytes) -> tuple[frozenset[ProfileFeature], int]:
    """Known features set in a TERMINAL PROFILE, and the number of BIP channels (byte 13)."""
    found = set()
    for name in dir(_Features):
        f = getattr(_Features, name)
        if isinstance(f, ProfileFeature) and profile_supports(profile, f):
            found.add(f)
    channels = profile[12] >> 5 if len(profile) >= 13 else 0
    return frozenset(found), channels


def profile_supports(profile: bytes, feature: ProfileFeature) -> bool:
    """True when ``profile`` has ``feature``'s bit set (missing bytes read as 0, §5.2)."""
    byte, bit = feature
    return len(profile) >= byte and bool(profile[byte - 1] & (1 << (bit - 1)))


# --------------------------------------------------------------------------- APDUs


def _case3(ins: int, data: bytes) -> bytes:
    if not 1 <= len(data) <= 0xFF:
        raise ValueError(f"APDU data must be 1..255 bytes, got {len(data)}")
    return bytes([CLA_CAT, ins, 0, 0, len(data)]) + data


def build_terminal_profile_apdu(profile: bytes) -> bytes:
    """TERMINAL PROFILE command APDU ``80 10 00 00 Lc profile`` (TS 102 221 §10.1.1)."""
    return _case3(INS_TERMINAL_PROFILE, profile)


def build_fetch_apdu(length: int) -> bytes:
    """FETCH command APDU ``80 12 00 00 Le`` with Le = xx from the card's ``91xx``."""
    _u8(length, "FETCH length", 1, 0xFF)  # 9100 is not "256 pending": 91xx has xx >= 1
    return bytes([CLA_CAT, INS_FETCH, 0, 0, length])


def build_terminal_response_apdu(tr: bytes) -> bytes:
    """TERMINAL RESPONSE command APDU ``80 14 00 00 Lc tr`` (TS 102 221 §10.1.3)."""
    return _case3(INS_TERMINAL_RESPONSE, tr)


def build_envelope_apdu(env: bytes) -> bytes:
    """ENVELOPE command APDU ``80 C2 00 00 Lc env`` (TS 102 221 §10.1.4)."""
    return _case3(INS_ENVELOPE, env)
