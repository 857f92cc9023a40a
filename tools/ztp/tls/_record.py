"""TLS 1.3 record layer (RFC 8446 §5) with the size limits of RFC 8449 and RFC 6066.

Reading: ``feed()`` buffers bytes; ``next_record()`` returns one ``Record`` (decrypted when a
read key is set) or ``None`` when more bytes are needed. Writing: ``protect()`` turns one
content type's bytes into as many records as the current fragment limit needs.

Limits (RFC 8446 §5.1, §5.2): TLSPlaintext.length <= 2^14, TLSCiphertext.length <= 2^14 + 256,
TLSInnerPlaintext (content + type + padding) <= 2^14 + 1 or our advertised record_size_limit;
anything larger is ``record_overflow``, checked from the 5-byte header before buffering more.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM

from ._alerts import BadRecordMac, DecodeError, RecordOverflow, UnexpectedMessage
from ._key_schedule import traffic_keys
from ._messages import CipherSuite

MAX_PLAINTEXT = 2**14
MAX_CIPHERTEXT = 2**14 + 256
HEADER_LENGTH = 5
TAG_LENGTH = 16
LEGACY_RECORD_VERSION = 0x0303
LEGACY_CLIENT_HELLO_RECORD_VERSION = 0x0301  # RFC 8446 §5.1, first ClientHello


class ContentType(IntEnum):
    """RFC 8446 §5.1."""

    INVALID = 0
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


_CONTENT_TYPES = {t.value: t for t in ContentType}  # a dict lookup: ContentType(n) costs ~5x more
# Members used on the per-record path, as module constants: on Python 3.11 reading a member
# as a class attribute (``ContentType.ALERT``) goes through EnumType's ``__getattr__`` slot,
# ~70 ns, against ~10 ns for a global; a handshake reads ~50 of them (issue 14)
_INVALID = ContentType.INVALID
_CHANGE_CIPHER_SPEC = ContentType.CHANGE_CIPHER_SPEC
_APPLICATION_DATA = ContentType.APPLICATION_DATA
_TLS_AES_128_CCM_SHA256 = CipherSuite.TLS_AES_128_CCM_SHA256
_HEADER = struct.Struct(">BHH")  # TLSPlaintext/TLSCiphertext: type, legacy_record_version, length


class Record(NamedTuple):
    """One record as read (a NamedTuple, not a frozen dataclass: built for every record on
    the per-handshake path, and immutable all the same)."""

    content_type: ContentType
    fragment: bytes
    protected: bool


class RecordCipher:
    """One direction's AEAD state (RFC 8446 §5.2, §5.3): key, static IV, sequence number."""

    def __init__(self, suite: CipherSuite, secret: bytes) -> None:
        key, iv = traffic_keys(secret)
        if suite == _TLS_AES_128_CCM_SHA256:
            self._aead: AESGCM | AESCCM = AESCCM(key)  # 16-byte tag: the default
        elif suite == CipherSuite.TLS_AES_128_GCM_SHA256:
            self._aead = AESGCM(key)
        else:  # pragma: no cover - suites are validated by configs
            raise ValueError(f"cipher suite {suite:#06x}")
        self._iv = int.from_bytes(iv, "big")
        self.suite = suite
        self.secret = secret
        self.sequence = 0

    def _nonce(self) -> bytes:
        # RFC 8446 §5.3: "Each sequence number is set to zero at the beginning of a connection
        # and whenever the key is changed ... Sequence numbers MUST NOT wrap."
        if self.sequence >= 2**64 - 1:
            raise UnexpectedMessage("record sequence number exhausted")
        nonce = (self._iv ^ self.sequence).to_bytes(12, "big")
        self.sequence += 1
        return nonce

    def encrypt(self, header: bytes, inner_plaintext: bytes) -> bytes:
        return self._aead.encrypt(self._nonce(), inner_plaintext, header)

    def decrypt(self, header: bytes, ciphertext: bytes) -> bytes:
        nonce = self._nonce()
        try:
            return self._aead.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            self.sequence -= 1  # the record did not exist (early-data skipping retries)
            raise BadRecordMac("record authentication failed") from None


class RecordLayer:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self.eof = False
        self.read_cipher: RecordCipher | None = None
        self.write_cipher: RecordCipher | None = None
        # what we accept: inner plaintext (content + type + padding), RFC 8449 §4
        self.max_inner_plaintext_in = MAX_PLAINTEXT + 1
        # what we send: content bytes per record (peer's record_size_limit - 1 or MFL)
        self.max_fragment_out = MAX_PLAINTEXT
        # bytes of undecryptable records still to skip (server refusing 0-RTT, §4.2.10)
        self.early_data_skip_budget = 0
        self.bytes_received = 0

    def feed(self, data: bytes) -> None:
        if data:
            self._buffer += data
            self.bytes_received += len(data)
        else:
            self.eof = True

    def pending(self) -> int:
        return len(self._buffer)

    def next_record(self) -> Record | None:
        """Return the next record, or None until a whole one has arrived.

        Raises:
            UnexpectedMessage: unknown content type, zero-length or misplaced record.
            RecordOverflow: a record above the limits. BadRecordMac: authentication failed.
            DecodeError: a record truncated by EOF.
        """
        buffer = self._buffer
        while True:
            if len(buffer) < HEADER_LENGTH:
                if self.eof and buffer:
                    raise DecodeError("connection closed inside a record header")
                return None
            content_type = _CONTENT_TYPES.get(buffer[0])
            if content_type is None:
                raise UnexpectedMessage(f"unknown record content type {buffer[0]}")
            if content_type is _INVALID:
                raise UnexpectedMessage("record of content type 0")
            # RFC 8446 §5.1: legacy_record_version "MUST be ignored for all purposes"
            length = buffer[3] << 8 | buffer[4]
            protected = self.read_cipher is not None and content_type is _APPLICATION_DATA
            limit = MAX_CIPHERTEXT if protected else MAX_PLAINTEXT
            if length > limit:
                raise RecordOverflow(f"record of {length} bytes, limit {limit}")
            if len(buffer) < HEADER_LENGTH + length:
                if self.eof:
                    raise DecodeError("connection closed inside a record")
                return None
            if protected:  # the header is the AEAD's additional data
                header = bytes(buffer[:HEADER_LENGTH])
            fragment = bytes(buffer[HEADER_LENGTH : HEADER_LENGTH + length])
            del buffer[: HEADER_LENGTH + length]
            if not protected:
                if (
                    content_type is _APPLICATION_DATA
                    and self.read_cipher is None
                    and 0 < length <= self.early_data_skip_budget
                ):
                    # 0-RTT data after a ClientHello we answered with a HelloRetryRequest
                    # (RFC 8446 §4.2.10): skipped, within the same budget
                    self.early_data_skip_budget -= length
                    continue
                if length == 0:
                    # RFC 8446 §5.1: no zero-length fragments of handshake or alert records
                    raise UnexpectedMessage(f"empty {content_type.name} record")
                return Record(content_type, fragment, False)
            assert self.read_cipher is not None
            if length < TAG_LENGTH + 1:
                raise BadRecordMac(f"protected record of {length} bytes")
            try:
                inner = self.read_cipher.decrypt(header, fragment)
            except BadRecordMac:
                if self.early_data_skip_budget >= length:
                    self.early_data_skip_budget -= length
                    continue
                raise
            self.early_data_skip_budget = 0
            if len(inner) > self.max_inner_plaintext_in:
                raise RecordOverflow(
                    f"inner plaintext of {len(inner)} bytes, limit {self.max_inner_plaintext_in}"
                )
            # RFC 8446 §5.4: strip zero padding; the last non-zero byte is the real type
            end = len(inner)
            while end and inner[end - 1] == 0:
                end -= 1
            if end == 0:
                raise UnexpectedMessage("protected record without a content type")
            inner_type = _CONTENT_TYPES.get(inner[end - 1])
            if inner_type is None:
                raise UnexpectedMessage(f"unknown inner content type {inner[end - 1]}")
            if inner_type is _CHANGE_CIPHER_SPEC:
                # RFC 8446 §5: a protected change_cipher_spec is "unexpected_message"
                raise UnexpectedMessage("protected change_cipher_spec record")
            content = inner[: end - 1]
            if not content and inner_type is not _APPLICATION_DATA:
                raise UnexpectedMessage(f"empty {inner_type.name} record")
            return Record(inner_type, content, True)

    def protect(self, content_type: ContentType, data: bytes, version: int | None = None) -> bytes:
        """Frame ``data`` into records (encrypted once a write key is set)."""
        step = self.max_fragment_out
        if len(data) <= step:  # the usual case: one record
            return self._protect_one(content_type, data, version)
        return b"".join(
            self._protect_one(content_type, data[i : i + step], version)
            for i in range(0, len(data), step)
        )

    def _protect_one(self, content_type: ContentType, chunk: bytes, version: int | None) -> bytes:
        if self.write_cipher is None or content_type == _CHANGE_CIPHER_SPEC:
            return _HEADER.pack(content_type, version or LEGACY_RECORD_VERSION, len(chunk)) + chunk
        inner = chunk + _CONTENT_TYPE_BYTES[content_type]
        header = _HEADER.pack(_APPLICATION_DATA, LEGACY_RECORD_VERSION, len(inner) + TAG_LENGTH)
        return header + self.write_cipher.encrypt(header, inner)


_CONTENT_TYPE_BYTES = {t: bytes([t]) for t in ContentType}  # TLSInnerPlaintext.type
