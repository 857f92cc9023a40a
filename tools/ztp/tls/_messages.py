"""TLS 1.3 handshake messages of the external-PSK profile (RFC 8446 §4, RFC 6066 §3-4,
RFC 8449).

Messages are frozen dataclasses, validated when built. ``pull_x(buf)`` reads a whole handshake
message (type, uint24 length, body) and raises only ``Alert`` subclasses; ``push_x(buf, msg)``
writes one. Extensions we understand become typed fields; the others are kept raw in
``other_extensions`` (ClientHello only; elsewhere an unknown extension is an error).

Abbreviations: CH ClientHello, SH ServerHello, EE EncryptedExtensions, HRR HelloRetryRequest,
NST NewSessionTicket, PSK pre-shared key.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from ._alerts import DecodeError, IllegalParameter, UnexpectedMessage
from ._buffer import Buffer

TLS_1_2 = 0x0303  # legacy_version (RFC 8446 §4.1.2)
TLS_1_3 = 0x0304

# RFC 8446 §4.1.3: SHA-256("HelloRetryRequest")
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


class HandshakeType(IntEnum):
    """RFC 8446 §4."""

    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    CERTIFICATE_REQUEST = 13
    CERTIFICATE_VERIFY = 15
    FINISHED = 20
    KEY_UPDATE = 24
    MESSAGE_HASH = 254


class ExtensionType(IntEnum):
    """RFC 8446 §4.2, RFC 6066 (server_name, max_fragment_length), RFC 8449."""

    SERVER_NAME = 0
    MAX_FRAGMENT_LENGTH = 1
    SUPPORTED_GROUPS = 10
    SIGNATURE_ALGORITHMS = 13
    PADDING = 21  # RFC 7685
    RECORD_SIZE_LIMIT = 28
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    COOKIE = 44
    PSK_KEY_EXCHANGE_MODES = 45
    KEY_SHARE = 51


class CipherSuite(IntEnum):
    """RFC 8446 §B.4: the two SHA-256 AES-128 suites of this profile."""

    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_128_CCM_SHA256 = 0x1304


class KeyExchangeMode(IntEnum):
    """RFC 8446 §4.2.9 PskKeyExchangeMode."""

    PSK_KE = 0
    PSK_DHE_KE = 1


class Group(IntEnum):
    """RFC 8446 §4.2.7 NamedGroup (only x25519 is implemented)."""

    X25519 = 0x001D


class NameType(IntEnum):
    HOST_NAME = 0  # RFC 6066 §3


# Members read on the server's per-handshake path, as module constants: on Python 3.11 reading
# a member as a class attribute goes through EnumType's ``__getattr__`` slot (~70 ns, against
# ~10 ns for a global; issue 14)
_SERVER_NAME = ExtensionType.SERVER_NAME
_PRE_SHARED_KEY = ExtensionType.PRE_SHARED_KEY
_SUPPORTED_VERSIONS = ExtensionType.SUPPORTED_VERSIONS
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_SERVER_HELLO = HandshakeType.SERVER_HELLO
_ENCRYPTED_EXTENSIONS = HandshakeType.ENCRYPTED_EXTENSIONS
_FINISHED = HandshakeType.FINISHED
_HOST_NAME = NameType.HOST_NAME

# RFC 6066 §4: MaxFragmentLength code -> size in bytes
MAX_FRAGMENT_LENGTHS = {1: 512, 2: 1024, 3: 2048, 4: 4096}

# RFC 8449 §4: "MUST NOT be less than 64"; TLS 1.3 records carry at most 2^14 + 1 bytes of
# inner plaintext (content and type).
RECORD_SIZE_LIMIT_MIN = 64
RECORD_SIZE_LIMIT_MAX_TLS13 = 2**14 + 1


def _check(condition: bool, what: str) -> None:
    # Validation of a message object built locally (ValueError) and of one parsed from the
    # wire share this helper; the pull path converts ValueError into DecodeError.
    if not condition:
        raise ValueError(what)


@dataclass(frozen=True)
class KeyShareEntry:
    group: int
    key_exchange: bytes

    def __post_init__(self) -> None:
        _check(0 <= self.group <= 0xFFFF, "group out of range")
        _check(1 <= len(self.key_exchange) <= 0xFFFF, "key_exchange <1..2^16-1>")


@dataclass(frozen=True)
class PskIdentity:
    identity: bytes
    obfuscated_ticket_age: int = 0

    def __post_init__(self) -> None:
        # the checks written out, not through _check: built per identity on the server's
        # per-handshake path (here and in OfferedPsks, ClientHello)
        if not 1 <= len(self.identity) <= 0xFFFF:
            raise ValueError("identity <1..2^16-1>")
        if not 0 <= self.obfuscated_ticket_age <= 0xFFFFFFFF:
            raise ValueError("ticket age out of range")


@dataclass(frozen=True)
class OfferedPsks:
    """RFC 8446 §4.2.11: identities and their binders, in the same order."""

    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.identities:
            raise ValueError("at least one PSK identity")
        for binder in self.binders:
            if not 32 <= len(binder) <= 255:
                raise ValueError("binder <32..255>")

    def binders_length(self) -> int:
        """Bytes of the binders list at the end of the ClientHello (with its 2-byte length)."""
        return 2 + sum(1 + len(b) for b in self.binders)


@dataclass(frozen=True)
class ClientHello:
    random: bytes
    legacy_session_id: bytes
    cipher_suites: tuple[int, ...]
    legacy_version: int = TLS_1_2
    legacy_compression_methods: bytes = b"\x00"
    server_name: str | None = None
    max_fragment_length: int | None = None  # RFC 6066 code 1..4 (validated by the server)
    supported_groups: tuple[int, ...] | None = None
    record_size_limit: int | None = None
    early_data: bool = False
    supported_versions: tuple[int, ...] | None = None
    psk_key_exchange_modes: tuple[int, ...] | None = None
    key_share: tuple[KeyShareEntry, ...] | None = None
    other_extensions: tuple[tuple[int, bytes], ...] = ()
    pre_shared_key: OfferedPsks | None = None  # always written last
    # wire order of the extensions as parsed, so a captured ClientHello rebuilds byte for
    # byte; not part of equality. Types missing from it are written after, in field order.
    extension_order: tuple[int, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if len(self.random) != 32:
            raise ValueError("random is 32 bytes")
        if len(self.legacy_session_id) > 32:
            raise ValueError("legacy_session_id <0..32>")
        if not 1 <= len(self.cipher_suites) <= 0x7FFF:
            raise ValueError("cipher_suites <2..2^16-2>")
        if not 1 <= len(self.legacy_compression_methods) <= 255:
            raise ValueError("compression <1..2^8-1>")
        if self.other_extensions:
            other_types = [t for t, _ in self.other_extensions]
            _check(len(set(other_types)) == len(other_types), "duplicate extension")
            _check(
                all(t not in _CLIENT_HELLO_TYPED for t in other_types),
                "an extension with a typed field given raw",
            )


_CLIENT_HELLO_TYPED = frozenset(
    {
        ExtensionType.SERVER_NAME,
        ExtensionType.MAX_FRAGMENT_LENGTH,
        ExtensionType.SUPPORTED_GROUPS,
        ExtensionType.RECORD_SIZE_LIMIT,
        ExtensionType.EARLY_DATA,
        ExtensionType.SUPPORTED_VERSIONS,
        ExtensionType.PSK_KEY_EXCHANGE_MODES,
        ExtensionType.KEY_SHARE,
        ExtensionType.PRE_SHARED_KEY,
    }
)


@dataclass(frozen=True)
class ServerHello:
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    legacy_version: int = TLS_1_2
    legacy_compression_method: int = 0
    supported_versions: int | None = None
    key_share: KeyShareEntry | None = None
    selected_group: int | None = None  # HRR only (key_share carries just the group)
    cookie: bytes | None = None  # HRR only
    pre_shared_key: int | None = None  # selected_identity

    def __post_init__(self) -> None:
        _check(len(self.random) == 32, "random is 32 bytes")
        _check(len(self.legacy_session_id_echo) <= 32, "legacy_session_id_echo <0..32>")

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM


@dataclass(frozen=True)
class EncryptedExtensions:
    server_name: bool = False  # empty server_name: the server used the SNI (RFC 6066 §3)
    max_fragment_length: int | None = None
    supported_groups: tuple[int, ...] | None = None
    record_size_limit: int | None = None
    early_data: bool = False


@dataclass(frozen=True)
class Finished:
    verify_data: bytes


@dataclass(frozen=True)
class NewSessionTicket:
    ticket_lifetime: int
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: tuple[tuple[int, bytes], ...] = field(default=())


@dataclass(frozen=True)
class KeyUpdate:
    request_update: bool


# -- helpers ----------------------------------------------------------------------------------


def pull_handshake_header(buf: Buffer, expected: HandshakeType) -> int:
    msg_type = buf.pull_uint8()
    if msg_type != expected:
        raise UnexpectedMessage(f"expected {expected.name}, got handshake type {msg_type}")
    return buf.pull_uint24()


def _pull_list(buf: Buffer, length_size: int, item_size: int, floor: int, ceiling: int):
    """A vector of 1- or 2-byte integers, as a tuple (one slice and one unpack, not a read per
    item: ClientHello parsing is on the server's per-handshake path)."""
    raw = buf.pull_opaque(length_size, floor, ceiling)
    if len(raw) % item_size:
        raise DecodeError(f"list of {item_size}-byte items has length {len(raw)}")
    if item_size == 1:
        return tuple(raw)
    return struct.unpack(f">{len(raw) // 2}H", raw)


def _uint16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _push_list(buf: Buffer, length_size: int, item_size: int, items) -> None:
    with buf.push_block(length_size):
        for item in items:
            buf.push_bytes(int(item).to_bytes(item_size, "big"))


_EXTENSION_HEADER = struct.Struct(">HH")  # ExtensionType extension_type; uint16 data length


def _pull_extensions(buf: Buffer, floor: int, ceiling: int = 0xFFFF):
    """Read ``Extension extensions<floor..ceiling>`` as a list of ``(type, data)``; a header or
    data that runs past the vector is decode_error, a duplicate type illegal_parameter
    (RFC 8446 §4.2).

    The vector is taken whole, then walked with one ``unpack_from`` per extension rather than
    a Buffer read per field: this runs for every ClientHello (issue 14). The walk ends exactly
    at the vector's end or fails.
    """
    block = buf.pull_opaque(2, floor, ceiling)
    end = len(block)
    seen: set[int] = set()
    out = []
    pos = 0
    while pos < end:
        if end - pos < _EXTENSION_HEADER.size:
            raise DecodeError(f"truncated: extension header, {end - pos} bytes left")
        ext_type, length = _EXTENSION_HEADER.unpack_from(block, pos)
        pos += _EXTENSION_HEADER.size
        if length > end - pos:
            raise DecodeError(f"truncated: extension of {length} bytes, {end - pos} left")
        if ext_type in seen:
            raise IllegalParameter(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        out.append((ext_type, block[pos : pos + length]))
        pos += length
    return out


def _parse_ext(data: bytes, reader):
    """Run ``reader`` on one extension's data and require that it consume all of it."""
    inner = Buffer(data)
    value = reader(inner)
    if not inner.eof():
        raise DecodeError(f"{inner.remaining()} trailing bytes in an extension")
    return value


def _parse_server_name(data: bytes) -> str:
    """The server_name extension's data (RFC 6066 §3): ServerName server_name_list<1..2^16-1>
    (uint8 name_type, opaque HostName<1..2^16-1>), and nothing after it; the host_name.

    The checks of reading it with ``pull_block``/``pull_opaque``, walked over the bytes with
    indices as ``_parse_offered_psks`` (a SIM's ClientHello carries one).
    """
    size = len(data)
    if size < 2:
        raise DecodeError(f"truncated: needed 2 bytes, {size} left")
    end = 2 + (data[0] << 8 | data[1])
    if end == 2:
        raise DecodeError("vector length 0 outside <1..65535>")
    if end > size:
        raise DecodeError(f"truncated: block of {end - 2} bytes, {size - 2} left")
    host: str | None = None
    pos = 2
    while pos < end:
        name_type = data[pos]
        pos += 1
        if end - pos < 2:
            raise DecodeError(f"truncated: needed 2 bytes, {end - pos} left")
        length = data[pos] << 8 | data[pos + 1]
        if length == 0:
            raise DecodeError("vector length 0 outside <1..65535>")
        pos += 2
        if end - pos < length:
            raise DecodeError(f"truncated: block of {length} bytes, {end - pos} left")
        name = data[pos : pos + length]
        pos += length
        if name_type != _HOST_NAME:
            continue
        if host is not None:
            # RFC 6066 §3: "MUST NOT contain more than one name of the same name_type"
            raise IllegalParameter("two host_name entries in server_name")
        try:
            host = name.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError("server_name host_name is not ASCII") from None
    if host is None:
        raise IllegalParameter("server_name without a host_name")
    if end != size:
        raise DecodeError(f"{size - end} trailing bytes in an extension")
    return host


def _pull_key_share_entry(buf: Buffer) -> KeyShareEntry:
    group = buf.pull_uint16()
    key_exchange = buf.pull_opaque(2, 1)
    return KeyShareEntry(group, key_exchange)


def _push_key_share_entry(buf: Buffer, entry: KeyShareEntry) -> None:
    buf.push_uint16(entry.group)
    buf.push_opaque(2, entry.key_exchange)


def _pull_client_shares(buf: Buffer) -> tuple[KeyShareEntry, ...]:
    entries: list[KeyShareEntry] = []
    with buf.pull_block(2):
        while not buf.eof():
            entry = _pull_key_share_entry(buf)
            # RFC 8446 §4.2.8: "Clients MUST NOT offer multiple KeyShareEntry values for the
            # same group."
            if any(e.group == entry.group for e in entries):
                raise IllegalParameter(f"two key shares for group {entry.group}")
            entries.append(entry)
    return tuple(entries)


def _parse_offered_psks(data: bytes) -> OfferedPsks:
    """The pre_shared_key extension's data (RFC 8446 §4.2.11): PskIdentity identities<7..2^16-1>
    (opaque identity<1..2^16-1>, uint32 obfuscated_ticket_age), PskBinderEntry
    binders<33..2^16-1> (opaque <32..255>), and nothing after them.

    The checks of reading it with ``pull_block``/``pull_opaque`` (every length within its
    bounds and inside its block, each block consumed exactly), walked over the bytes with
    indices: every ClientHello carries one (issue 14).
    """
    size = len(data)
    identities: list[PskIdentity] = []
    pos = 2
    if size < pos:
        raise DecodeError(f"truncated: needed 2 bytes, {size} left")
    end = pos + (data[0] << 8 | data[1])
    if end - pos < 7:
        raise DecodeError(f"vector length {end - pos} outside <7..65535>")
    if end > size:
        raise DecodeError(f"truncated: block of {end - pos} bytes, {size - pos} left")
    while pos < end:
        if end - pos < 2:
            raise DecodeError(f"truncated: needed 2 bytes, {end - pos} left")
        length = data[pos] << 8 | data[pos + 1]
        if length == 0:
            raise DecodeError("vector length 0 outside <1..65535>")
        pos += 2
        if end - pos < length + 4:  # the identity and its uint32 age
            raise DecodeError(f"truncated: PSK identity of {length} bytes, {end - pos} left")
        identity = data[pos : pos + length]
        pos += length
        age = data[pos] << 24 | data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3]
        pos += 4
        identities.append(PskIdentity(identity, age))
    binders: list[bytes] = []
    if size - pos < 2:
        raise DecodeError(f"truncated: needed 2 bytes, {size - pos} left")
    end = pos + 2 + (data[pos] << 8 | data[pos + 1])
    pos += 2
    if end - pos < 33:
        raise DecodeError(f"vector length {end - pos} outside <33..65535>")
    if end > size:
        raise DecodeError(f"truncated: block of {end - pos} bytes, {size - pos} left")
    while pos < end:
        length = data[pos]
        if length < 32:
            raise DecodeError(f"vector length {length} outside <32..255>")
        pos += 1
        if end - pos < length:
            raise DecodeError(f"truncated: binder of {length} bytes, {end - pos} left")
        binders.append(data[pos : pos + length])
        pos += length
    if len(binders) != len(identities):
        # RFC 8446 §4.2.11: binders and identities correspond one to one
        raise IllegalParameter(f"{len(identities)} PSK identities but {len(binders)} binders")
    if end != size:
        raise DecodeError(f"{size - end} trailing bytes in an extension")
    return OfferedPsks(tuple(identities), tuple(binders))


def _pull_record_size_limit(buf: Buffer) -> int:
    value = buf.pull_uint16()
    if value < RECORD_SIZE_LIMIT_MIN:
        # RFC 8449 §4: "MUST abort the handshake with an illegal_parameter alert"
        raise IllegalParameter(f"record_size_limit {value} below 64")
    return value


def _pull_max_fragment_length(buf: Buffer) -> int:
    code = buf.pull_uint8()
    if code not in MAX_FRAGMENT_LENGTHS:
        # RFC 6066 §4: "an illegal_parameter alert"
        raise IllegalParameter(f"max_fragment_length code {code}")
    return code


def _empty(buf: Buffer) -> bool:
    return True


def _pull_supported_groups(buf: Buffer) -> tuple[int, ...]:
    return _pull_list(buf, 2, 2, 2, 0xFFFF)  # NamedGroup named_group_list<2..2^16-1>


def _parse_list_ext(
    data: bytes, length_size: int, item_size: int, floor: int, ceiling: int
) -> tuple[int, ...]:
    """An extension whose data is exactly one vector of 1- or 2-byte integers, read from its
    bytes without a Buffer (the same checks as ``_parse_ext(data, _pull_list)``: the length
    within bounds and equal to what follows it, whole items)."""
    length = len(data) - length_size
    if length < 0 or int.from_bytes(data[:length_size], "big") != length:
        raise DecodeError(f"extension of {len(data)} bytes is not one {length_size}-byte vector")
    if not floor <= length <= ceiling:
        raise DecodeError(f"vector length {length} outside <{floor}..{ceiling}>")
    if length % item_size:
        raise DecodeError(f"list of {item_size}-byte items has length {length}")
    if item_size == 1:
        return tuple(data[length_size:])
    return struct.unpack(f">{length // 2}H", data[length_size:])


# -- ClientHello ------------------------------------------------------------------------------

# The ClientHello extensions with a typed field: type -> (field, reader of the extension data);
# server_name and pre_shared_key, in every SIM's ClientHello, are read from their bytes
# (_parse_server_name, _parse_offered_psks) by pull_client_hello itself
_CLIENT_HELLO_READERS = {
    ExtensionType.MAX_FRAGMENT_LENGTH: ("max_fragment_length", _pull_max_fragment_length),
    ExtensionType.RECORD_SIZE_LIMIT: ("record_size_limit", _pull_record_size_limit),
    ExtensionType.EARLY_DATA: ("early_data", _empty),
    ExtensionType.KEY_SHARE: ("key_share", _pull_client_shares),
}
# ... and those that are one integer vector: type -> (field, _parse_list_ext arguments)
_CLIENT_HELLO_LISTS = {
    # NamedGroup named_group_list<2..2^16-1>
    ExtensionType.SUPPORTED_GROUPS: ("supported_groups", (2, 2, 2, 0xFFFF)),
    # ProtocolVersion versions<2..254>
    ExtensionType.SUPPORTED_VERSIONS: ("supported_versions", (1, 2, 2, 254)),
    # PskKeyExchangeMode ke_modes<1..255>
    ExtensionType.PSK_KEY_EXCHANGE_MODES: ("psk_key_exchange_modes", (1, 1, 1, 255)),
}
assert (
    _CLIENT_HELLO_READERS.keys()
    | _CLIENT_HELLO_LISTS.keys()
    | {ExtensionType.PRE_SHARED_KEY, ExtensionType.SERVER_NAME}  # read by pull_client_hello
    == _CLIENT_HELLO_TYPED
)


def pull_client_hello(buf: Buffer) -> ClientHello:
    """Read a ClientHello handshake message.

    Raises:
        DecodeError: malformed encoding. IllegalParameter: duplicate extensions, a
            pre_shared_key that is not last, bad extension values.

    The fixed fields and the extensions vector are walked over the buffer's bytes with
    indices (``Buffer.unread``), with the checks of reading them with ``pull_x`` in the same
    order (each length within its vector's bounds and inside the buffer, every block consumed
    exactly, duplicates before the length match): every handshake starts here, and one walk
    costs less than a Buffer call per field (issue 14: ~14 -> ~8 us a ClientHello with
    ``frozen_builder``). The cursor moves past the message on success.
    """
    data, pos, end = buf.unread()
    # Handshake: msg_type, uint24 length
    if pos >= end:
        raise _truncated(1, 0)
    if data[pos] != _CLIENT_HELLO:
        raise UnexpectedMessage(f"expected CLIENT_HELLO, got handshake type {data[pos]}")
    if end - pos < 4:
        raise _truncated(3, end - pos - 1)
    length = data[pos + 1] << 16 | data[pos + 2] << 8 | data[pos + 3]
    pos += 4
    start = pos
    # ProtocolVersion legacy_version; Random random
    if end - pos < 34:
        raise _truncated(2, end - pos) if end - pos < 2 else _truncated(32, end - pos - 2)
    legacy_version = data[pos] << 8 | data[pos + 1]
    random = data[pos + 2 : pos + 34]
    pos += 34
    # opaque legacy_session_id<0..32>
    if pos >= end:
        raise _truncated(1, 0)
    size = data[pos]
    if size > 32:
        raise DecodeError(f"vector length {size} outside <0..32>")
    pos += 1
    if end - pos < size:
        raise DecodeError(f"truncated: block of {size} bytes, {end - pos} left")
    session_id = data[pos : pos + size]
    pos += size
    # CipherSuite cipher_suites<2..2^16-2>
    if end - pos < 2:
        raise _truncated(2, end - pos)
    size = data[pos] << 8 | data[pos + 1]
    if not 2 <= size <= 0xFFFE:
        raise DecodeError(f"vector length {size} outside <2..65534>")
    pos += 2
    if end - pos < size:
        raise DecodeError(f"truncated: block of {size} bytes, {end - pos} left")
    if size % 2:
        raise DecodeError(f"list of 2-byte items has length {size}")
    cipher_suites = struct.unpack_from(f">{size // 2}H", data, pos)
    pos += size
    # opaque legacy_compression_methods<1..2^8-1>
    if pos >= end:
        raise _truncated(1, 0)
    size = data[pos]
    if size < 1:
        raise DecodeError("vector length 0 outside <1..255>")
    pos += 1
    if end - pos < size:
        raise DecodeError(f"truncated: block of {size} bytes, {end - pos} left")
    compression = data[pos : pos + size]
    pos += size
    # Extension extensions<0..2^16-1> (RFC 8446 §4.1.2: a TLS 1.2 ClientHello may end without
    # extensions; we require them, and a ClientHello without supported_versions is answered
    # with protocol_version); duplicates are illegal_parameter (§4.2)
    extensions: list[tuple[int, bytes]] = []
    types: list[int] = []  # their types in wire order
    if pos - start < length:
        if end - pos < 2:
            raise _truncated(2, end - pos)
        size = data[pos] << 8 | data[pos + 1]
        pos += 2
        block_end = pos + size
        if block_end > end:
            raise DecodeError(f"truncated: block of {size} bytes, {end - pos} left")
        while pos < block_end:
            if block_end - pos < 4:
                _check_no_duplicate(types)  # a duplicate before the break is found first
                raise DecodeError(f"truncated: extension header, {block_end - pos} bytes left")
            ext_type, size = _unpack_extension_header(data, pos)
            pos += 4
            if size > block_end - pos:
                _check_no_duplicate(types)
                raise DecodeError(f"truncated: extension of {size} bytes, {block_end - pos} left")
            types.append(ext_type)
            extensions.append((ext_type, data[pos : pos + size]))
            pos += size
        if len(set(types)) != len(types):
            _check_no_duplicate(types)
    if pos - start != length:
        raise DecodeError("ClientHello length does not match its contents")
    fields: dict = {}
    other: list[tuple[int, bytes]] = []
    last = len(extensions) - 1
    for index, (ext_type, ext_data) in enumerate(extensions):
        if ext_type == _PRE_SHARED_KEY:
            if index != last:
                # RFC 8446 §4.2.11: "The "pre_shared_key" extension MUST be the last extension
                # in the ClientHello ... Servers MUST check that it is the last extension and
                # otherwise fail the handshake with an "illegal_parameter" alert."
                raise IllegalParameter("pre_shared_key is not the last extension")
            fields["pre_shared_key"] = _parse_offered_psks(ext_data)
            continue
        if ext_type == _SERVER_NAME:
            fields["server_name"] = _parse_server_name(ext_data)
            continue
        typed = _CLIENT_HELLO_READERS.get(ext_type)
        if typed is None:
            listed = _CLIENT_HELLO_LISTS.get(ext_type)
            if listed is None:
                other.append((ext_type, ext_data))
            else:
                fields[listed[0]] = _parse_list_ext(ext_data, *listed[1])
            continue
        name, reader = typed
        fields[name] = _parse_ext(ext_data, reader)
    fields["extension_order"] = tuple(types)
    fields["legacy_version"] = legacy_version
    fields["random"] = random
    fields["legacy_session_id"] = session_id
    fields["cipher_suites"] = cipher_suites
    fields["legacy_compression_methods"] = compression
    fields["other_extensions"] = tuple(other)
    hello = _build_client_hello(fields)
    buf.skip_to(pos)
    return hello


_unpack_extension_header = _EXTENSION_HEADER.unpack_from


def _check_no_duplicate(types: list[int]) -> None:
    """illegal_parameter (RFC 8446 §4.2) for the first type that repeats an earlier one: the
    extensions walk checks once at its end, or before it fails, not at every extension."""
    seen: set[int] = set()
    for ext_type in types:
        if ext_type in seen:
            raise IllegalParameter(f"duplicate extension {ext_type}")
        seen.add(ext_type)


def _truncated(needed: int, left: int) -> DecodeError:
    return DecodeError(f"truncated: needed {needed} bytes, {left} left")


def frozen_builder(cls):
    """A function ``fields -> cls(**fields)`` for a frozen dataclass built on the server's
    per-handshake path (ClientHello, HandshakeComplete), without its generated ``__init__``:
    that one sets every field through ``object.__setattr__`` (frozen), ~2 us for
    ClientHello's 17 fields against ~0.5 here (issue 14). Defaults are filled in and
    ``__post_init__``, if any, runs, so the object is the one ``__init__`` builds, validated
    the same way (a ValueError becomes DecodeError, as ``_build``); a missing or unknown field
    name is a TypeError."""
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default_factory not supported")
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
    count = len(dataclasses.fields(cls))
    new = object.__new__
    post_init = getattr(cls, "__post_init__", None)

    def build(fields: dict):
        obj = new(cls)
        values = obj.__dict__
        values.update(defaults)
        values.update(fields)
        if len(values) != count:
            raise TypeError(f"{cls.__name__}: fields {sorted(values)}")
        if post_init is None:
            return obj
        try:
            post_init(obj)
        except ValueError as exc:
            raise DecodeError(f"{cls.__name__}: {exc}") from None
        return obj

    return build


_build_client_hello = frozen_builder(ClientHello)


def _build(cls, **kwargs):
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise DecodeError(f"{cls.__name__}: {exc}") from None


def push_client_hello(buf: Buffer, hello: ClientHello) -> None:
    """Write a ClientHello; pre_shared_key, if any, goes last with the binders as given."""
    buf.push_uint8(HandshakeType.CLIENT_HELLO)
    with buf.push_block(3):
        buf.push_uint16(hello.legacy_version)
        buf.push_bytes(hello.random)
        buf.push_opaque(1, hello.legacy_session_id)
        _push_list(buf, 2, 2, hello.cipher_suites)
        buf.push_opaque(1, hello.legacy_compression_methods)
        extensions = _client_hello_extensions(hello)
        order = [t for t in hello.extension_order if t in extensions]
        order += [t for t in extensions if t not in order]
        if ExtensionType.PRE_SHARED_KEY in extensions:  # RFC 8446 §4.2.11: always last
            order.remove(ExtensionType.PRE_SHARED_KEY)
            order.append(ExtensionType.PRE_SHARED_KEY)
        with buf.push_block(2):
            for ext_type in order:
                buf.push_uint16(ext_type)
                buf.push_opaque(2, extensions[ext_type])


def _client_hello_extensions(hello: ClientHello) -> dict[int, bytes]:
    """Encode each present extension's data, in field order."""
    out: dict[int, bytes] = {}

    def add(ext_type: int, writer) -> None:
        inner = Buffer()
        writer(inner)
        out[ext_type] = inner.data

    if hello.server_name is not None:
        name = hello.server_name.encode("ascii")

        def write_server_name(b: Buffer) -> None:
            with b.push_block(2):
                b.push_uint8(NameType.HOST_NAME)
                b.push_opaque(2, name)

        add(ExtensionType.SERVER_NAME, write_server_name)
    if hello.max_fragment_length is not None:
        add(ExtensionType.MAX_FRAGMENT_LENGTH, lambda b: b.push_uint8(hello.max_fragment_length))
    if hello.supported_groups is not None:
        add(ExtensionType.SUPPORTED_GROUPS, lambda b: _push_list(b, 2, 2, hello.supported_groups))
    if hello.record_size_limit is not None:
        add(ExtensionType.RECORD_SIZE_LIMIT, lambda b: b.push_uint16(hello.record_size_limit))
    if hello.early_data:
        add(ExtensionType.EARLY_DATA, lambda b: None)
    if hello.supported_versions is not None:
        add(
            ExtensionType.SUPPORTED_VERSIONS,
            lambda b: _push_list(b, 1, 2, hello.supported_versions),
        )
    if hello.psk_key_exchange_modes is not None:
        add(
            ExtensionType.PSK_KEY_EXCHANGE_MODES,
            lambda b: _push_list(b, 1, 1, hello.psk_key_exchange_modes),
        )
    if hello.key_share is not None:
        shares = hello.key_share

        def write_key_share(b: Buffer) -> None:
            with b.push_block(2):
                for entry in shares:
                    _push_key_share_entry(b, entry)

        add(ExtensionType.KEY_SHARE, write_key_share)
    for ext_type, data in hello.other_extensions:
        out[ext_type] = data
    if hello.pre_shared_key is not None:
        offered = hello.pre_shared_key

        def write_psk(b: Buffer) -> None:
            with b.push_block(2):
                for psk in offered.identities:
                    b.push_opaque(2, psk.identity)
                    b.push_uint32(psk.obfuscated_ticket_age)
            with b.push_block(2):
                for binder in offered.binders:
                    b.push_opaque(1, binder)

        add(ExtensionType.PRE_SHARED_KEY, write_psk)
    return out


# -- ServerHello ------------------------------------------------------------------------------


def pull_server_hello(buf: Buffer) -> ServerHello:
    """Read a ServerHello or HelloRetryRequest (same type; HRR_RANDOM tells them apart)."""
    length = pull_handshake_header(buf, HandshakeType.SERVER_HELLO)
    start = buf.position
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = buf.pull_opaque(1, 0, 32)
    cipher_suite = buf.pull_uint16()
    compression = buf.pull_uint8()
    fields: dict = {}
    is_hrr = random == HRR_RANDOM
    for ext_type, data in _pull_extensions(buf, 6):
        if ext_type == ExtensionType.SUPPORTED_VERSIONS:
            fields["supported_versions"] = _parse_ext(data, Buffer.pull_uint16)
        elif ext_type == ExtensionType.KEY_SHARE and is_hrr:
            fields["selected_group"] = _parse_ext(data, Buffer.pull_uint16)
        elif ext_type == ExtensionType.KEY_SHARE:
            fields["key_share"] = _parse_ext(data, _pull_key_share_entry)
        elif ext_type == ExtensionType.COOKIE and is_hrr:
            fields["cookie"] = _parse_ext(data, lambda b: b.pull_opaque(2, 1))
        elif ext_type == ExtensionType.PRE_SHARED_KEY and not is_hrr:
            fields["pre_shared_key"] = _parse_ext(data, Buffer.pull_uint16)
        else:
            # RFC 8446 §4.1.4/§4.2: the client offered nothing else the server may answer here
            raise IllegalParameter(f"extension {ext_type} not allowed in ServerHello")
    if buf.position - start != length:
        raise DecodeError("ServerHello length does not match its contents")
    return _build(
        ServerHello,
        legacy_version=legacy_version,
        random=random,
        legacy_session_id_echo=session_id,
        cipher_suite=cipher_suite,
        legacy_compression_method=compression,
        **fields,
    )


def push_server_hello(buf: Buffer, hello: ServerHello) -> None:
    buf.push_bytes(
        encode_server_hello(
            hello.random,
            hello.legacy_session_id_echo,
            hello.cipher_suite,
            legacy_version=hello.legacy_version,
            legacy_compression_method=hello.legacy_compression_method,
            supported_versions=hello.supported_versions,
            key_share=hello.key_share,
            selected_group=hello.selected_group,
            cookie=hello.cookie,
            pre_shared_key=hello.pre_shared_key,
        )
    )


def encode_server_hello(
    random: bytes,
    legacy_session_id_echo: bytes,
    cipher_suite: int,
    *,
    legacy_version: int = TLS_1_2,
    legacy_compression_method: int = 0,
    supported_versions: int | None = None,
    key_share: KeyShareEntry | None = None,
    selected_group: int | None = None,
    cookie: bytes | None = None,
    pre_shared_key: int | None = None,
) -> bytes:
    """The ServerHello handshake message with these fields (those of ``ServerHello``, checked
    as it checks them), as ``push_server_hello`` writes it.

    The server's own flight calls this directly rather than building a ``ServerHello`` first:
    a frozen dataclass costs one ``object.__setattr__`` per field, and the server writes one
    per handshake (issue 14). Extensions are encoded first, then the message in one piece.
    """
    if len(random) != 32:
        raise ValueError("random is 32 bytes")
    if len(legacy_session_id_echo) > 32:
        raise ValueError("legacy_session_id_echo <0..32>")
    extensions = b""
    if supported_versions == TLS_1_3:  # every ServerHello of ours: a constant
        extensions = _EXT_SUPPORTED_VERSIONS_TLS_1_3
    elif supported_versions is not None:
        extensions += _ext_bytes(_SUPPORTED_VERSIONS, _uint16(supported_versions))
    if key_share is not None:
        extensions += _ext_bytes(
            ExtensionType.KEY_SHARE,
            _uint16(key_share.group)
            + _uint16(len(key_share.key_exchange))
            + key_share.key_exchange,
        )
    if selected_group is not None:
        extensions += _ext_bytes(ExtensionType.KEY_SHARE, _uint16(selected_group))
    if cookie is not None:
        extensions += _ext_bytes(ExtensionType.COOKIE, _uint16(len(cookie)) + cookie)
    if pre_shared_key is not None:
        extensions += _ext_bytes(_PRE_SHARED_KEY, _uint16(pre_shared_key))
    body = b"".join(
        (
            legacy_version.to_bytes(2, "big"),
            random,
            bytes((len(legacy_session_id_echo),)),
            legacy_session_id_echo,
            cipher_suite.to_bytes(2, "big"),
            bytes((legacy_compression_method,)),
            len(extensions).to_bytes(2, "big"),
            extensions,
        )
    )
    return _handshake_header(_SERVER_HELLO, body) + body


def _ext_bytes(ext_type: int, data: bytes) -> bytes:
    """One encoded Extension: type, uint16 length, data."""
    if len(data) > 0xFFFF:
        raise ValueError(f"extension {ext_type} of {len(data)} bytes")
    return _EXTENSION_HEADER.pack(ext_type, len(data)) + data


_EXT_SUPPORTED_VERSIONS_TLS_1_3 = _ext_bytes(_SUPPORTED_VERSIONS, _uint16(TLS_1_3))


def _handshake_header(msg_type: HandshakeType, body: bytes) -> bytes:
    """Handshake.msg_type and uint24 length (RFC 8446 §4)."""
    if len(body) >= 1 << 24:
        raise ValueError(f"handshake message of {len(body)} bytes")
    return bytes((msg_type,)) + len(body).to_bytes(3, "big")


# -- EncryptedExtensions ----------------------------------------------------------------------


def pull_encrypted_extensions(buf: Buffer) -> EncryptedExtensions:
    length = pull_handshake_header(buf, HandshakeType.ENCRYPTED_EXTENSIONS)
    start = buf.position
    fields: dict = {}
    for ext_type, data in _pull_extensions(buf, 0):
        if ext_type == ExtensionType.SERVER_NAME:
            fields["server_name"] = _parse_ext(data, _empty)
        elif ext_type == ExtensionType.MAX_FRAGMENT_LENGTH:
            fields["max_fragment_length"] = _parse_ext(data, _pull_max_fragment_length)
        elif ext_type == ExtensionType.SUPPORTED_GROUPS:
            fields["supported_groups"] = _parse_ext(data, _pull_supported_groups)
        elif ext_type == ExtensionType.RECORD_SIZE_LIMIT:
            fields["record_size_limit"] = _parse_ext(data, _pull_record_size_limit)
        elif ext_type == ExtensionType.EARLY_DATA:
            fields["early_data"] = _parse_ext(data, _empty)
        else:
            # RFC 8446 §4.2: an extension not offered in the ClientHello ->
            # "unsupported_extension"; one that does not belong in EE -> illegal_parameter.
            # The client checks what it offered; unknown types fail here.
            from ._alerts import UnsupportedExtension

            raise UnsupportedExtension(f"extension {ext_type} in EncryptedExtensions")
    if buf.position - start != length:
        raise DecodeError("EncryptedExtensions length does not match its contents")
    return EncryptedExtensions(**fields)


def push_encrypted_extensions(buf: Buffer, ee: EncryptedExtensions) -> None:
    buf.push_bytes(
        encode_encrypted_extensions(
            server_name=ee.server_name,
            max_fragment_length=ee.max_fragment_length,
            supported_groups=ee.supported_groups,
            record_size_limit=ee.record_size_limit,
            early_data=ee.early_data,
        )
    )


def encode_encrypted_extensions(
    *,
    server_name: bool = False,
    max_fragment_length: int | None = None,
    supported_groups: tuple[int, ...] | None = None,
    record_size_limit: int | None = None,
    early_data: bool = False,
) -> bytes:
    """The EncryptedExtensions message with these fields (those of ``EncryptedExtensions``),
    as ``push_encrypted_extensions`` writes it; the server's flight calls it directly, as
    ``encode_server_hello``."""
    if (
        server_name
        and max_fragment_length is None
        and supported_groups is None
        and record_size_limit is None
        and not early_data
    ):
        return _EE_SERVER_NAME_ONLY  # the usual one (a SIM sends SNI and no limits): constant
    return _encode_encrypted_extensions(
        server_name, max_fragment_length, supported_groups, record_size_limit, early_data
    )


def _encode_encrypted_extensions(
    server_name: bool,
    max_fragment_length: int | None,
    supported_groups: tuple[int, ...] | None,
    record_size_limit: int | None,
    early_data: bool,
) -> bytes:
    extensions = b""
    if server_name:
        extensions += _ext_bytes(_SERVER_NAME, b"")
    if max_fragment_length is not None:
        extensions += _ext_bytes(ExtensionType.MAX_FRAGMENT_LENGTH, bytes((max_fragment_length,)))
    if supported_groups is not None:
        groups = Buffer()
        _push_list(groups, 2, 2, supported_groups)
        extensions += _ext_bytes(ExtensionType.SUPPORTED_GROUPS, groups.data)
    if record_size_limit is not None:
        extensions += _ext_bytes(ExtensionType.RECORD_SIZE_LIMIT, _uint16(record_size_limit))
    if early_data:
        extensions += _ext_bytes(ExtensionType.EARLY_DATA, b"")
    if len(extensions) > 0xFFFF:
        raise ValueError(f"extensions of {len(extensions)} bytes")
    body = _uint16(len(extensions)) + extensions
    return _handshake_header(_ENCRYPTED_EXTENSIONS, body) + body


_EE_SERVER_NAME_ONLY = _encode_encrypted_extensions(True, None, None, None, False)


# -- Finished, NewSessionTicket, KeyUpdate ----------------------------------------------------


def pull_finished(buf: Buffer) -> Finished:
    length = pull_handshake_header(buf, _FINISHED)
    return Finished(buf.pull_bytes(length))


def push_finished(buf: Buffer, finished: Finished) -> None:
    buf.push_bytes(encode_finished(finished.verify_data))


def encode_finished(verify_data: bytes) -> bytes:
    """The Finished message (RFC 8446 §4.4.4), as ``push_finished`` writes it."""
    return _handshake_header(_FINISHED, verify_data) + verify_data


def pull_new_session_ticket(buf: Buffer) -> NewSessionTicket:
    length = pull_handshake_header(buf, HandshakeType.NEW_SESSION_TICKET)
    start = buf.position
    lifetime = buf.pull_uint32()
    age_add = buf.pull_uint32()
    nonce = buf.pull_opaque(1, 0)
    ticket = buf.pull_opaque(2, 1)
    extensions = _pull_extensions(buf, 0, 0xFFFE)
    if buf.position - start != length:
        raise DecodeError("NewSessionTicket length does not match its contents")
    return NewSessionTicket(lifetime, age_add, nonce, ticket, tuple(extensions))


def push_new_session_ticket(buf: Buffer, nst: NewSessionTicket) -> None:
    buf.push_uint8(HandshakeType.NEW_SESSION_TICKET)
    with buf.push_block(3):
        buf.push_uint32(nst.ticket_lifetime)
        buf.push_uint32(nst.ticket_age_add)
        buf.push_opaque(1, nst.ticket_nonce)
        buf.push_opaque(2, nst.ticket)
        with buf.push_block(2):
            for ext_type, data in nst.extensions:
                buf.push_uint16(ext_type)
                buf.push_opaque(2, data)


def pull_key_update(buf: Buffer) -> KeyUpdate:
    length = pull_handshake_header(buf, HandshakeType.KEY_UPDATE)
    if length != 1:
        raise DecodeError(f"KeyUpdate body of {length} bytes")
    value = buf.pull_uint8()
    if value not in (0, 1):
        # RFC 8446 §4.6.3: any other value -> illegal_parameter
        raise IllegalParameter(f"KeyUpdate request_update {value}")
    return KeyUpdate(bool(value))


def push_key_update(buf: Buffer, update: KeyUpdate) -> None:
    buf.push_uint8(HandshakeType.KEY_UPDATE)
    with buf.push_block(3):
        buf.push_uint8(int(update.request_update))
