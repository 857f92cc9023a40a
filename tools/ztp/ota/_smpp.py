"""SMPP v3.4 PDU codec, sans-I/O: what the SMS-centre adapter speaks to an operator's SMSC.

SMPP = Short Message Peer-to-Peer Protocol Specification v3.4 (SMPP Developers Forum, 1999).
ESME = our side (External Short Message Entity), SMSC = the operator's SMS centre.

Only the PDUs an OTA sender needs: bind_transceiver (§4.1.5), unbind (§4.2), generic_nack
(§4.3), submit_sm (§4.4), deliver_sm (§4.6), enquire_link (§4.11), and their responses. Every
PDU is a 16-octet big-endian header (command_length, command_id, command_status,
sequence_number, §3.2) and a body; C-Octet strings end in NUL (§3.1).

Why our own codec and not smpplib (2.2.4 on PyPI, SMPP 3.4): the service's transport
interface is synchronous and called from a request thread while a reader thread must answer
deliver_sm and enquire_link at any time; smpplib's ``Client`` owns the socket, reads in its
own blocking ``listen()``/``read_once()`` loop, sends and reads without a lock, and has no
sans-I/O layer to feed split input in tests (STYLE.md §2). The PDUs we need are few and fixed,
so the codec is a page, and the project gains no dependency.

    buf = PduBuffer()
    buf.receive_data(chunk)          # any split
    pdu = buf.next_pdu()             # Pdu | None (need more data)
    data = build_pdu(Pdu(SUBMIT_SM, 0, seq, build_sm(sm)))
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._errors import OtaDecodeError, OtaUsageError

__all__ = [
    "BIND_TRANSCEIVER", "BIND_TRANSCEIVER_RESP", "DELIVER_SM", "DELIVER_SM_RESP",
    "ENQUIRE_LINK", "ENQUIRE_LINK_RESP", "ESM_CLASS_UDHI", "ESME_RINVCMDID", "ESME_ROK",
    "GENERIC_NACK", "SUBMIT_SM", "SUBMIT_SM_RESP", "UNBIND", "UNBIND_RESP", "BindTransceiver",
    "Pdu", "PduBuffer", "ShortMessage", "build_bind", "build_pdu", "build_sm", "parse_bind",
    "parse_c_octet_body", "parse_pdu", "parse_sm", "smpp_status_name",
]

# Command IDs (SMPP v3.4 §5.1.2.1)
GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
BIND_TRANSCEIVER_RESP = 0x80000009
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015

# command_status (§5.1.3), the ones we name in messages
ESME_ROK = 0x00000000
ESME_RINVCMDLEN = 0x00000002
ESME_RINVCMDID = 0x00000003
ESME_RSYSERR = 0x00000008
_STATUS_NAMES = {0x00: "ESME_ROK", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
                 0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x08: "ESME_RSYSERR",
                 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0D: "ESME_RBINDFAIL",
                 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x14: "ESME_RMSGQFUL",
                 0x45: "ESME_RSUBMITFAIL", 0x58: "ESME_RTHROTTLED", 0x64: "ESME_RX_T_APPN",
                 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN"}

ESM_CLASS_UDHI = 0x40  # esm_class bit 6: short_message starts with a UDH (§5.2.12)
ESM_CLASS_TYPE_MASK = 0x3C  # bits 5..2: message type; 0x04 = SMSC delivery receipt
INTERFACE_VERSION = 0x34
TLV_MESSAGE_PAYLOAD = 0x0424  # §5.3.2.32: the user data when it is not in short_message

HEADER_LEN = 16
MAX_PDU_LEN = 4096  # our cap; a deliver_sm with a 254-octet short_message is < 400


def smpp_status_name(status: int) -> str:
    """``0x0000000E (ESME_RINVPASWD)``: the status as SMPP §5.1.3 names it."""
    name = _STATUS_NAMES.get(status)
    return f"0x{status:08X}" + (f" ({name})" if name else "")


@dataclass(frozen=True)
class Pdu:
    """One PDU: header fields and the raw body (decode with parse_sm / parse_bind ...)."""

    command_id: int
    command_status: int
    sequence_number: int
    body: bytes = b""

    def __post_init__(self) -> None:
        for name in ("command_id", "command_status", "sequence_number"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFFFFFF:
                raise OtaUsageError(f"SMPP {name}: {value} is not 4 octets")
        if HEADER_LEN + len(self.body) > MAX_PDU_LEN:
            raise OtaUsageError(f"SMPP PDU over {MAX_PDU_LEN} octets")


def build_pdu(pdu: Pdu) -> bytes:
    return struct.pack(">IIII", HEADER_LEN + len(pdu.body), pdu.command_id,
                       pdu.command_status, pdu.sequence_number) + pdu.body


def parse_pdu(data: bytes) -> Pdu:
    """One whole PDU. Raises OtaDecodeError (bad or inconsistent command_length)."""
    if len(data) < HEADER_LEN:
        raise OtaDecodeError(f"SMPP: {len(data)} octets, a header is {HEADER_LEN} (§3.2)")
    length, cid, status, seq = struct.unpack_from(">IIII", data)
    if length != len(data):
        raise OtaDecodeError(f"SMPP: command_length {length}, got {len(data)} octets")
    return Pdu(cid, status, seq, bytes(data[HEADER_LEN:]))


class PduBuffer:
    """Splits a TCP stream into PDUs; accepts input split anywhere, several PDUs at once."""

    def __init__(self, max_pdu_len: int = MAX_PDU_LEN) -> None:
        self._buf = bytearray()
        self._max = max_pdu_len
        self.eof = False

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data``; ``b""`` means the peer closed."""
        if not data:
            self.eof = True
        self._buf += data

    def next_pdu(self) -> Pdu | None:
        """The next whole PDU, or None (more data needed).

        Raises:
            OtaDecodeError: command_length below 16 or above the cap (the stream cannot be
                resynchronised: close the connection).
        """
        if len(self._buf) < 4:
            return None
        length = int.from_bytes(self._buf[:4], "big")
        if not HEADER_LEN <= length <= self._max:
            raise OtaDecodeError(f"SMPP: command_length {length}, expected "
                                 f"{HEADER_LEN}..{self._max} (§3.2)")
        if len(self._buf) < length:
            return None
        data = bytes(self._buf[:length])
        del self._buf[:length]
        return parse_pdu(data)


# ---------------------------------------------------------------------------- fields


def _c_octet(value: str, max_len: int, name: str) -> bytes:
    raw = value.encode("ascii")
    if b"\x00" in raw or len(raw) + 1 > max_len:
        raise OtaUsageError(f"SMPP {name}: at most {max_len - 1} ASCII characters, no NUL")
    return raw + b"\x00"


def _pull_c_octet(body: bytes, pos: int, max_len: int, name: str) -> tuple[str, int]:
    end = body.find(b"\x00", pos, pos + max_len)
    if end < 0:
        raise OtaDecodeError(f"SMPP {name}: no NUL within {max_len} octets (§3.1)")
    try:
        return body[pos:end].decode("ascii"), end + 1
    except UnicodeDecodeError:
        raise OtaDecodeError(f"SMPP {name}: not ASCII") from None


def _pull_octet(body: bytes, pos: int, name: str) -> tuple[int, int]:
    if pos >= len(body):
        raise OtaDecodeError(f"SMPP: truncated before {name}")
    return body[pos], pos + 1


def parse_c_octet_body(body: bytes, name: str, max_len: int = 65) -> str:
    """Body of a bind_transceiver_resp (system_id) or submit_sm_resp (message_id), TLVs
    after it ignored; an empty body (an error response, §4.1.6 / §4.4.2) gives ""."""
    if not body:
        return ""
    return _pull_c_octet(body, 0, max_len, name)[0]


@dataclass(frozen=True)
class BindTransceiver:
    """bind_transceiver body (§4.1.5); the password is never in repr."""

    system_id: str
    password: str = ""
    system_type: str = ""
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    interface_version: int = INTERFACE_VERSION

    def __repr__(self) -> str:
        return f"BindTransceiver(system_id={self.system_id!r}, system_type={self.system_type!r})"


def build_bind(bind: BindTransceiver) -> bytes:
    return (_c_octet(bind.system_id, 16, "system_id") + _c_octet(bind.password, 9, "password")
            + _c_octet(bind.system_type, 13, "system_type")
            + bytes((bind.interface_version, bind.addr_ton, bind.addr_npi))
            + _c_octet(bind.address_range, 41, "address_range"))


def parse_bind(body: bytes) -> BindTransceiver:
    system_id, pos = _pull_c_octet(body, 0, 16, "system_id")
    password, pos = _pull_c_octet(body, pos, 9, "password")
    system_type, pos = _pull_c_octet(body, pos, 13, "system_type")
    if pos + 3 > len(body):
        raise OtaDecodeError("SMPP bind: truncated before address_range")
    version, ton, npi = body[pos:pos + 3]
    address_range, pos = _pull_c_octet(body, pos + 3, 41, "address_range")
    if pos != len(body):
        raise OtaDecodeError(f"SMPP bind: {len(body) - pos} trailing octets")
    return BindTransceiver(system_id, password, system_type, ton, npi, address_range, version)


@dataclass(frozen=True)
class ShortMessage:
    """submit_sm / deliver_sm body (§4.4.1, §4.6.1: the same layout).

    ``short_message`` is the user data (with the UDH when esm_class has UDHI); a deliver_sm
    may carry it in the message_payload TLV instead (``message_payload``).
    """

    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    esm_class: int = 0
    protocol_id: int = 0
    data_coding: int = 0
    registered_delivery: int = 0
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    service_type: str = ""
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    replace_if_present_flag: int = 0
    sm_default_msg_id: int = 0
    message_payload: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.short_message) > 254:
            raise OtaUsageError("SMPP short_message: at most 254 octets (§5.2.22)")

    @property
    def user_data(self) -> bytes:
        return self.message_payload if self.message_payload is not None else self.short_message


def build_sm(sm: ShortMessage) -> bytes:
    out = (_c_octet(sm.service_type, 6, "service_type")
           + bytes((sm.source_addr_ton, sm.source_addr_npi))
           + _c_octet(sm.source_addr, 21, "source_addr")
           + bytes((sm.dest_addr_ton, sm.dest_addr_npi))
           + _c_octet(sm.destination_addr, 21, "destination_addr")
           + bytes((sm.esm_class, sm.protocol_id, sm.priority_flag))
           + _c_octet(sm.schedule_delivery_time, 17, "schedule_delivery_time")
           + _c_octet(sm.validity_period, 17, "validity_period")
           + bytes((sm.registered_delivery, sm.replace_if_present_flag, sm.data_coding,
                    sm.sm_default_msg_id, len(sm.short_message))) + sm.short_message)
    if sm.message_payload is not None:
        out += struct.pack(">HH", TLV_MESSAGE_PAYLOAD, len(sm.message_payload))
        out += sm.message_payload
    return out


def parse_sm(body: bytes) -> ShortMessage:
    """Raises OtaDecodeError: a field truncated or too long, sm_length past the end, a
    truncated TLV. Unknown TLVs are skipped (§3.3: optional parameters)."""
    service_type, pos = _pull_c_octet(body, 0, 6, "service_type")
    s_ton, pos = _pull_octet(body, pos, "source_addr_ton")
    s_npi, pos = _pull_octet(body, pos, "source_addr_npi")
    source, pos = _pull_c_octet(body, pos, 21, "source_addr")
    d_ton, pos = _pull_octet(body, pos, "dest_addr_ton")
    d_npi, pos = _pull_octet(body, pos, "dest_addr_npi")
    dest, pos = _pull_c_octet(body, pos, 21, "destination_addr")
    esm, pos = _pull_octet(body, pos, "esm_class")
    pid, pos = _pull_octet(body, pos, "protocol_id")
    prio, pos = _pull_octet(body, pos, "priority_flag")
    sched, pos = _pull_c_octet(body, pos, 17, "schedule_delivery_time")
    validity, pos = _pull_c_octet(body, pos, 17, "validity_period")
    reg, pos = _pull_octet(body, pos, "registered_delivery")
    replace, pos = _pull_octet(body, pos, "replace_if_present_flag")
    dcs, pos = _pull_octet(body, pos, "data_coding")
    default_id, pos = _pull_octet(body, pos, "sm_default_msg_id")
    sm_len, pos = _pull_octet(body, pos, "sm_length")
    if sm_len > 254 or pos + sm_len > len(body):
        raise OtaDecodeError(f"SMPP sm_length {sm_len}: only {len(body) - pos} octets left")
    short, pos = body[pos:pos + sm_len], pos + sm_len
    payload = None
    while pos < len(body):
        if pos + 4 > len(body):
            raise OtaDecodeError("SMPP: truncated TLV header (§3.3)")
        tag, length = struct.unpack_from(">HH", body, pos)
        if pos + 4 + length > len(body):
            raise OtaDecodeError(f"SMPP: TLV 0x{tag:04X} length {length} past the end")
        if tag == TLV_MESSAGE_PAYLOAD:
            payload = bytes(body[pos + 4:pos + 4 + length])
        pos += 4 + length
    return ShortMessage(source, dest, bytes(short), esm, pid, dcs, reg, s_ton, s_npi, d_ton,
                        d_npi, service_type, prio, sched, validity, replace, default_id,
                        payload)
