"""DNS stub resolver messages of the SAFE2 applet: RFC 1035 A query and strict answer parsing.

Sans-I/O: ``build_query`` makes the UDP payload, ``parse_answer`` checks the reply belongs to
the query (id, flags, echoed question) and returns the IPv4 addresses of the A records. Names
in answers may use compression pointers (RFC 1035 §4.1.4); every loop is bounded.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["DnsCache", "DnsError", "NameNotFound", "build_query", "encode_name", "parse_answer"]

TYPE_A = 1
TYPE_CNAME = 5
CLASS_IN = 1
_MAX_MESSAGE = 512  # RFC 1035 §4.2.1: UDP messages
_MAX_POINTERS = 16


class DnsError(Exception):
    """The reply is malformed or does not answer our query (remote misbehaviour)."""


class NameNotFound(DnsError):
    """NXDOMAIN, or an answer without any A record."""


def encode_name(name: str) -> bytes:
    """Wire form of a host name (RFC 1035 §3.1). Raises ValueError for a bad name."""
    labels = name.rstrip(".").split(".")
    out = bytearray()
    for label in labels:
        raw = label.encode("ascii")
        if not 1 <= len(raw) <= 63:
            raise ValueError(f"bad DNS label {label!r}")
        out += bytes([len(raw)]) + raw.lower()
    out += b"\x00"
    if len(out) > 255:
        raise ValueError("DNS name longer than 255 bytes")
    return bytes(out)


def build_query(query_id: int, name: str) -> bytes:
    """A standard query (RD set) for the A records of ``name``."""
    header = struct.pack("!6H", query_id, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!2H", TYPE_A, CLASS_IN)


def _skip_name(msg: bytes, pos: int) -> int:
    """Position after the (possibly compressed) name at ``pos``."""
    for _ in range(128):
        if pos >= len(msg):
            raise DnsError("name runs past the end of the message")
        n = msg[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            if pos + 2 > len(msg):
                raise DnsError("truncated compression pointer")
            target = ((n & 0x3F) << 8) | msg[pos + 1]
            _check_pointer(msg, target)
            return pos + 2
        if n & 0xC0:
            raise DnsError(f"label type {n:#x} not supported")
        pos += 1 + n
    raise DnsError("name with too many labels")


def _check_pointer(msg: bytes, target: int) -> None:
    # Follow the chain (bounded) to prove it ends in a root label inside the message.
    for _ in range(_MAX_POINTERS):
        if target >= len(msg):
            raise DnsError("compression pointer outside the message")
        pos = target
        for _ in range(128):
            if pos >= len(msg):
                raise DnsError("name runs past the end of the message")
            n = msg[pos]
            if n == 0:
                return
            if n & 0xC0 == 0xC0:
                if pos + 2 > len(msg):
                    raise DnsError("truncated compression pointer")
                target = ((n & 0x3F) << 8) | msg[pos + 1]
                break
            if n & 0xC0:
                raise DnsError(f"label type {n:#x} not supported")
            pos += 1 + n
        else:
            raise DnsError("name with too many labels")
    else:
        raise DnsError("compression pointer loop")


def parse_answer(msg: bytes, query: bytes) -> tuple[ipaddress.IPv4Address, ...]:
    """Addresses of the A records in ``msg``, the reply to ``query`` (as sent).

    Raises:
        NameNotFound: NXDOMAIN, or no A record in the answer.
        DnsError: truncated or malformed, wrong id, not a response, TC set, other RCODE, or the
            question is not ours.
    """
    return parse_answer_ttl(msg, query)[0]


def parse_answer_ttl(msg: bytes, query: bytes) -> tuple[tuple[ipaddress.IPv4Address, ...], int]:
    """As :func:`parse_answer`, with the answer's TTL in seconds: the smallest TTL of its A
    records (RFC 2181 §5.2); a TTL with the top bit set counts as 0 (RFC 2181 §8)."""
    if len(msg) > _MAX_MESSAGE:
        raise DnsError(f"reply of {len(msg)} bytes, at most {_MAX_MESSAGE}")
    if len(msg) < 12:
        raise DnsError(f"reply of {len(msg)} bytes, shorter than a header")
    qid, flags, qd, an, _ns, _ar = struct.unpack_from("!6H", msg)
    if qid != int.from_bytes(query[:2], "big"):
        raise DnsError(f"reply id {qid:#06x} does not match the query")
    if not flags & 0x8000 or (flags >> 11) & 0xF:
        raise DnsError(f"flags {flags:#06x}: not a standard query response")
    if flags & 0x0200:
        raise DnsError("truncated reply (TC) and no TCP fallback")
    rcode = flags & 0xF
    if rcode == 3:
        raise NameNotFound("NXDOMAIN")
    if rcode:
        raise DnsError(f"RCODE {rcode}")
    if qd != 1:
        raise DnsError(f"{qd} questions in the reply, expected 1")
    question = query[12:]
    if msg[12 : 12 + len(question)].lower() != question.lower():
        raise DnsError("the reply's question is not ours")
    pos = 12 + len(question)
    addresses: list[ipaddress.IPv4Address] = []
    ttl_s: int | None = None
    for _ in range(an):
        pos = _skip_name(msg, pos)
        if pos + 10 > len(msg):
            raise DnsError("truncated resource record")
        rtype, rclass, ttl, rdlen = struct.unpack_from("!2HIH", msg, pos)
        pos += 10
        if pos + rdlen > len(msg):
            raise DnsError("resource record data runs past the end")
        if rtype == TYPE_A and rclass == CLASS_IN:
            if rdlen != 4:
                raise DnsError(f"A record of {rdlen} bytes")
            addresses.append(ipaddress.IPv4Address(msg[pos : pos + 4]))
            ttl = 0 if ttl & 0x80000000 else ttl
            ttl_s = ttl if ttl_s is None else min(ttl_s, ttl)
        pos += rdlen
    if not addresses or ttl_s is None:
        raise NameNotFound("no A record in the answer")
    return tuple(addresses), ttl_s


@dataclass
class DnsCache:
    """One cached A answer of the applet, valid while toolkit timer 3 runs (``_job.py``): the
    card's transient memory, dropped by a reset or a new TERMINAL PROFILE."""

    host: str | None = None
    address: ipaddress.IPv4Address | None = None

    def get(self, host: str) -> ipaddress.IPv4Address | None:
        return self.address if self.host is not None and self.host == host else None

    def put(self, host: str, address: ipaddress.IPv4Address) -> None:
        self.host, self.address = host, address

    def clear(self) -> None:
        self.host = self.address = None
