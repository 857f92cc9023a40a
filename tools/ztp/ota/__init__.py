"""OTA secured packets and PSK rotation for the SAFE2 SIM (ETSI TS 102 225 / 3GPP TS 31.115).

Sans-I/O: bytes and time in, bytes and decisions out. See docs/ota.md.
"""
from ._errors import (
    OtaDecodeError,
    OtaError,
    OtaProtocolError,
    OtaSecurityError,
    OtaUsageError,
    RotationError,
)
from ._ts_102_225 import (
    AES_BLOCK,
    CC_LENGTH,
    COUNTER_MAX,
    RESPONSE_UDH,
    Checksum,
    CommandPacket,
    CounterMode,
    OpenedCommand,
    OpenedResponse,
    OtaKeys,
    PorRequest,
    ResponsePacket,
    ResponseStatus,
    Spi,
    build_command_packet,
    build_response_packet,
    open_command,
    open_response,
    parse_command_packet,
    parse_response_packet,
    parse_spi,
    seal_command,
    seal_response,
    seal_unsecured_response,
    status_name,
)

__all__ = [
    "AES_BLOCK", "CC_LENGTH", "COUNTER_MAX", "RESPONSE_UDH",
    "Checksum", "CommandPacket", "CounterMode", "OpenedCommand", "OpenedResponse", "OtaKeys",
    "PorRequest", "ResponsePacket", "ResponseStatus", "Spi",
    "build_command_packet", "build_response_packet", "open_command", "open_response",
    "parse_command_packet", "parse_response_packet", "parse_spi", "seal_command",
    "seal_response", "seal_unsecured_response", "status_name",
    "OtaDecodeError", "OtaError", "OtaProtocolError", "OtaSecurityError", "OtaUsageError",
    "RotationError",
]
