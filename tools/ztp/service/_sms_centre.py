"""What the service needs of an SMS centre (``Settings.sms_centre``): the transport interface
and its error, shared by the HTTP client of the virtual centre (``_rotation.HttpSmsCentre``)
and the SMPP adapter (``_smpp_centre.SmppSmsCentre``)."""

from __future__ import annotations

from typing import Protocol

__all__ = ["SmsTransport", "SmsTransportError"]


class SmsTransportError(Exception):
    """The SMS centre could not be reached or refused the SMS (the message says why)."""


class SmsTransport(Protocol):
    def deliver(self, iccid: str, tpdu: bytes) -> bytes | None:
        """Send one SMS-DELIVER TPDU to the SIM; the PoR user data, or None when none came
        back. Raises SmsTransportError."""
        ...
