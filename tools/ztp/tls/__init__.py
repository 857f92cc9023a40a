"""TLS 1.3 external-PSK engine (sans-I/O): the SIM's client and the gateway's server.

RFC 8446 (TLS 1.3) with external PSKs only: psk_ke and psk_dhe_ke (x25519),
TLS_AES_128_CCM_SHA256 and TLS_AES_128_GCM_SHA256, RFC 6066 server_name and
max_fragment_length, RFC 8449 record_size_limit. See docs/tls.md.
"""

from ._alerts import (
    Alert,
    AlertDescription,
    BadRecordMac,
    DecodeError,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    InternalError,
    LocalProtocolError,
    MissingExtension,
    ProtocolVersion,
    RecordOverflow,
    UnexpectedMessage,
    UnsupportedExtension,
)
from ._connection import (
    ClientConfig,
    ClientConnection,
    ClientState,
    PskCandidate,
    PskLookup,
    ServerConfig,
    ServerConnection,
    ServerState,
)
from ._events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    PskRequest,
)
from ._messages import CipherSuite, KeyExchangeMode

__all__ = [
    "NEED_DATA",
    "Alert",
    "AlertDescription",
    "AlertReceived",
    "ApplicationData",
    "BadRecordMac",
    "CipherSuite",
    "ClientConfig",
    "ClientConnection",
    "ClientState",
    "ConnectionClosed",
    "DecodeError",
    "DecryptError",
    "Event",
    "HandshakeComplete",
    "HandshakeFailure",
    "IllegalParameter",
    "InternalError",
    "KeyExchangeMode",
    "LocalProtocolError",
    "MissingExtension",
    "PskCandidate",
    "PskLookup",
    "PskRequest",
    "ProtocolVersion",
    "RecordOverflow",
    "ServerConfig",
    "ServerConnection",
    "ServerState",
    "UnexpectedMessage",
    "UnsupportedExtension",
]
