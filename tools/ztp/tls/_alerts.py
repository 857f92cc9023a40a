"""TLS alerts as exceptions (RFC 8446 §6, RFC 8449, RFC 6066).

Every remote protocol error raised by the engine is an ``Alert`` subclass that carries the
``AlertDescription`` the engine sends to the peer (aioquic style). Local misuse of the API
(sending before the handshake, calling ``supply_psks`` in the wrong state) raises
``LocalProtocolError`` instead and never produces an alert.
"""

from __future__ import annotations

from enum import IntEnum


class AlertLevel(IntEnum):
    """RFC 8446 §6: in TLS 1.3 the level is ignored by the receiver."""

    WARNING = 1
    FATAL = 2


class AlertDescription(IntEnum):
    """RFC 8446 §6 (plus RFC 6066 / RFC 8449 users of the same registry)."""

    CLOSE_NOTIFY = 0
    UNEXPECTED_MESSAGE = 10
    BAD_RECORD_MAC = 20
    RECORD_OVERFLOW = 22
    HANDSHAKE_FAILURE = 40
    BAD_CERTIFICATE = 42
    UNSUPPORTED_CERTIFICATE = 43
    CERTIFICATE_REVOKED = 44
    CERTIFICATE_EXPIRED = 45
    CERTIFICATE_UNKNOWN = 46
    ILLEGAL_PARAMETER = 47
    UNKNOWN_CA = 48
    ACCESS_DENIED = 49
    DECODE_ERROR = 50
    DECRYPT_ERROR = 51
    PROTOCOL_VERSION = 70
    INSUFFICIENT_SECURITY = 71
    INTERNAL_ERROR = 80
    INAPPROPRIATE_FALLBACK = 86
    USER_CANCELED = 90
    MISSING_EXTENSION = 109
    UNSUPPORTED_EXTENSION = 110
    UNRECOGNIZED_NAME = 112
    BAD_CERTIFICATE_STATUS_RESPONSE = 113
    UNKNOWN_PSK_IDENTITY = 115
    CERTIFICATE_REQUIRED = 116
    NO_APPLICATION_PROTOCOL = 120


class LocalProtocolError(Exception):
    """The caller used the API wrongly (our fault, not the peer's); no alert is sent."""


class Alert(Exception):
    """A fatal TLS protocol error; ``description`` is the alert sent to the peer."""

    description: AlertDescription = AlertDescription.INTERNAL_ERROR


class UnexpectedMessage(Alert):
    description = AlertDescription.UNEXPECTED_MESSAGE


class BadRecordMac(Alert):
    description = AlertDescription.BAD_RECORD_MAC


class RecordOverflow(Alert):
    description = AlertDescription.RECORD_OVERFLOW


class HandshakeFailure(Alert):
    description = AlertDescription.HANDSHAKE_FAILURE


class IllegalParameter(Alert):
    description = AlertDescription.ILLEGAL_PARAMETER


class DecodeError(Alert):
    description = AlertDescription.DECODE_ERROR


class DecryptError(Alert):
    description = AlertDescription.DECRYPT_ERROR


class ProtocolVersion(Alert):
    description = AlertDescription.PROTOCOL_VERSION


class InternalError(Alert):
    description = AlertDescription.INTERNAL_ERROR


class MissingExtension(Alert):
    description = AlertDescription.MISSING_EXTENSION


class UnsupportedExtension(Alert):
    description = AlertDescription.UNSUPPORTED_EXTENSION
