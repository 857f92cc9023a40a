# Exceptions of the OTA package (ztp.ota).
#
# Whose fault it was (STYLE.md §4): OtaProtocolError and its subclasses mean the remote side sent
# something wrong (malformed bytes, a failed security check); the parse and check paths raise
# only these. OtaUsageError means the caller misused the API (bad key length, illegal rotation
# transition). Messages never contain keys, PSKs or decrypted secured data.
from __future__ import annotations


class OtaError(Exception):
    """Base class of every error raised by ztp.ota."""


class OtaProtocolError(OtaError):
    """The remote side (network or card) sent something we must refuse."""


class OtaDecodeError(OtaProtocolError, ValueError):
    """Malformed bytes: wrong length, bad tag, reserved bits set, trailing data."""


class OtaSecurityError(OtaProtocolError):
    """A security check of TS 102 225 failed.

    Attributes:
        status: the TS 102 225 §5.2 / TS 31.115 response status code a card answers with
            for this failure (e.g. 0x01 RC/CC/DS failed, 0x02 counter low).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OtaUsageError(OtaError, ValueError):
    """Local misuse of the API: invalid argument, unsupported option, wrong state."""


class RotationError(OtaUsageError):
    """An event that the rotation state machine does not accept in its current state."""
