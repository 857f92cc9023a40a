"""Wire-level helpers for negative tests: rewrite a ClientHello, inject records."""

from __future__ import annotations

import dataclasses

from ztp.tls import ClientConnection
from ztp.tls._buffer import Buffer
from ztp.tls._key_schedule import KeySchedule, compute_binder
from ztp.tls._messages import ClientHello, pull_client_hello, push_client_hello
from ztp.tls._record import ContentType, RecordCipher


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return (
        bytes([content_type])
        + version.to_bytes(2, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


def handshake_message(msg_type: int, body: bytes = b"") -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def protected(suite, secret: bytes, seq: int, content_type: int, payload: bytes) -> bytes:
    cipher = RecordCipher(suite, secret)
    cipher.sequence = seq
    inner = payload + bytes([content_type])
    header = bytes([ContentType.APPLICATION_DATA, 3, 3]) + (len(inner) + 16).to_bytes(2, "big")
    return header + cipher.encrypt(header, inner)


def sign(message: bytes, psk: bytes) -> bytes:
    """Recompute the single binder at the end of a ClientHello message (without parsing it,
    so malformed messages can be signed too)."""
    truncated = message[: len(message) - 35]  # one 32-byte binder: 2 + 1 + 32 bytes
    return message[:-32] + compute_binder(psk, truncated)


def rewrite_hello(client: ClientConnection, psk: bytes, *, resign: bool = True, **changes) -> bytes:
    """Take the client's queued ClientHello, change fields, re-sign it, and make the client's
    transcript match, so the rest of the handshake still works. Returns the record."""
    wire = client.data_to_send()
    hello: ClientHello = pull_client_hello(Buffer(wire[5:]))
    hello = dataclasses.replace(hello, **changes)
    buf = Buffer()
    push_client_hello(buf, hello)
    message = sign(buf.data, psk) if hello.pre_shared_key and resign else buf.data
    ks = KeySchedule()
    ks.update_transcript(message)
    ks.early_secret(psk)
    client._key_schedule = ks
    client._hello, client._hello_message = hello, message  # what a HelloRetryRequest repeats
    return record(ContentType.HANDSHAKE, message, 0x0301)


def extensions_offset(message: bytes) -> int:
    """Offset of the extensions length field in a ClientHello handshake message."""
    pos = 4 + 2 + 32
    pos += 1 + message[pos]
    pos += 2 + int.from_bytes(message[pos : pos + 2], "big")
    pos += 1 + message[pos]
    return pos


def insert_extension(message: bytes, ext_type: int, data: bytes, *, at_end: bool) -> bytes:
    """Insert a raw extension at the start or the very end, fixing every length."""
    pos = extensions_offset(message)
    ext = ext_type.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
    ext_len = int.from_bytes(message[pos : pos + 2], "big") + len(ext)
    body = message[4:pos] + ext_len.to_bytes(2, "big")
    rest = message[pos + 2 :]
    body += rest + ext if at_end else ext + rest
    return bytes([message[0]]) + len(body).to_bytes(3, "big") + body
