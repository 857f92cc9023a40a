"""DNS messages for the virtual network's resolver: RFC 1035 A-record queries and answers.

Sans-I/O and strict: ``parse_query`` accepts exactly one question in a standard query (an EDNS
OPT record, RFC 6891, in the additional section is tolerated and ignored) and raises
``DnsFormatError`` for anything else; ``build_response`` writes the answer.

Abbreviations: RR = resource record, QTYPE/QCLASS = question type/class (RFC 1035 §4.1.2).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["DnsFormatError", "DnsQuery", "build_response", "parse_query"]

TYPE_A: Final = 1  # RFC 1035 §3.2.2
TYPE_OPT: Final = 41  # RFC 6891 §6.1.1
CLASS_IN: Final = 1
RCODE_NOERROR: Final = 0
RCODE_FORMERR: Final = 1
RCODE_SERVFAIL: Final = 2
RCODE_NXDOMAIN: Final = 3
RCODE_NOTIMP: Final = 4
_MAX_NAME: Final = 255  # RFC 1035 §2.3.4
_MAX_LABEL: Final = 63
_MAX_QUERY: Final = 512  # RFC 1035 §4.2.1 UDP messages


class DnsFormatError(ValueError):
    """A query that is not a well-formed standard query (answered FORMERR if it has an id)."""

    def __init__(self, message: str, query_id: int | None = None) -> None:
        super().__init__(message)
        self.query_id = query_id


@dataclass(frozen=True)
class DnsQuery:
    id: int
    recursion_desired: bool
    name: str  # lower case, no trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received (echoed in the response)


def parse_query(data: bytes) -> DnsQuery:
    """Parse a DNS query message (RFC 1035 §4.1).

    Raises:
        DnsFormatError: truncated, not a query, not exactly one question, compressed or
            oversized names, trailing bytes.
    """
    if len(data) > _MAX_QUERY:
        raise DnsFormatError(f"query of {len(data)} bytes, at most {_MAX_QUERY}")
    if len(data) < 12:
        raise DnsFormatError(f"header: expected 12 bytes, got {len(data)}")
    qid, flags, qd, an, ns, ar = struct.unpack_from("!6H", data)
    if flags & 0x8000:
        raise DnsFormatError("QR set: a response, not a query", qid)
    if (flags >> 11) & 0xF:
        raise DnsFormatError(f"opcode {(flags >> 11) & 0xF}: only QUERY (0)", qid)
    if qd != 1 or an or ns or ar > 1:
        raise DnsFormatError(f"counts qd={qd} an={an} ns={ns} ar={ar}: expected 1,0,0,<=1", qid)
    pos = 12
    labels: list[str] = []
    total = 0
    while True:
        if pos >= len(data):
            raise DnsFormatError("question name runs past the end", qid)
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if n > _MAX_LABEL:
            raise DnsFormatError(f"label length {n:#x}: compression or >63 not accepted", qid)
        if pos + n > len(data):
            raise DnsFormatError("label runs past the end", qid)
        label = data[pos:pos + n]
        pos += n
        total += n + 1
        if total > _MAX_NAME:
            raise DnsFormatError("name longer than 255 bytes", qid)
        try:
            labels.append(label.decode("ascii").lower())
        except UnicodeDecodeError:
            raise DnsFormatError("non-ASCII label", qid) from None
    if pos + 4 > len(data):
        raise DnsFormatError("question type/class truncated", qid)
    qtype, qclass = struct.unpack_from("!2H", data, pos)
    question = data[12:pos + 4]
    pos += 4
    if ar:
        # One OPT pseudo-RR: root name, type 41, class, ttl, rdlength, rdata.
        if pos + 11 > len(data) or data[pos] != 0:
            raise DnsFormatError("additional record: expected an EDNS OPT RR", qid)
        rtype, _cls, _ttl, rdlen = struct.unpack_from("!HHIH", data, pos + 1)
        if rtype != TYPE_OPT:
            raise DnsFormatError(f"additional record of type {rtype}: only OPT", qid)
        pos += 11 + rdlen
    if pos != len(data):
        raise DnsFormatError(f"{len(data) - pos} trailing bytes", qid)
    return DnsQuery(qid, bool(flags & 0x0100), ".".join(labels), qtype, qclass, question)


def build_response(
    query: DnsQuery,
    addresses: tuple[ipaddress.IPv4Address, ...] = (),
    *,
    rcode: int = RCODE_NOERROR,
    authoritative: bool = False,
    ttl_s: int = 60,
) -> bytes:
    """A response echoing the question, with one A record per address (RFC 1035 §4.1.3)."""
    flags = 0x8000 | 0x0080 | rcode  # QR, RA
    if query.recursion_desired:
        flags |= 0x0100
    if authoritative:
        flags |= 0x0400
    out = struct.pack("!6H", query.id, flags, 1, len(addresses), 0, 0) + query.question
    for addr in addresses:
        # Name: pointer to the question name at offset 12 (RFC 1035 §4.1.4).
        out += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, ttl_s, 4) + addr.packed
    return out


def build_error(query_id: int, rcode: int) -> bytes:
    """A bare response header with ``rcode`` (for queries that cannot be parsed)."""
    return struct.pack("!6H", query_id, 0x8000 | 0x0080 | rcode, 0, 0, 0, 0)
