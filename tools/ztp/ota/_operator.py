# The operator side of OTA PSK rotation (the "sending entity" of ETSI TS 102 225): build the
# install-PSK command for one SIM, wrap it for SMS-PP, and check the proof of receipt.
#
# The caller owns the per-SIM counter: every packet, retries included, takes the next value
# (ROTATION_SPI asks the card for "counter must be higher"), so a retry is never a replay.
from __future__ import annotations

from dataclasses import dataclass

from ._errors import OtaDecodeError, OtaProtocolError
from ._safe2 import (
    SAFE2_OTA_TAR,
    InstallPsk,
    InstallResult,
    build_install_psk,
    parse_install_result,
)
from ._sms import (
    DCS_CLASS2_8BIT,
    PID_SIM_DATA_DOWNLOAD,
    SmsAddress,
    SmsDeliver,
    build_command_user_data,
    build_sms_deliver,
    build_sms_pp_download,
    parse_response_user_data,
    parse_sms_submit,
)
from ._ts_102_225 import (
    Checksum,
    CounterMode,
    OtaKeys,
    PorRequest,
    ResponseStatus,
    Spi,
    open_response,
    parse_response_packet,
    seal_command,
    status_name,
)

# Ciphered + CC, counter must be higher, PoR always, ciphered + CC, in the SMS-DELIVER-REPORT.
ROTATION_SPI = Spi(checksum=Checksum.CC, ciphering=True, counter_mode=CounterMode.HIGHER,
                   por=PorRequest.REQUIRED, por_checksum=Checksum.CC, por_ciphering=True,
                   por_via_submit=False)  # SPI 16 19


def build_install_psk_command(keys: OtaKeys, *, counter: int, psk: bytes, key_version: int,
                              tar: bytes = SAFE2_OTA_TAR, spi: Spi = ROTATION_SPI) -> bytes:
    """The secured command packet (CPL ...) that installs `psk` as `key_version`.

    Raises:
        OtaUsageError: bad PSK (not 16 bytes), version (not 1..255), counter or SPI.
    """
    data = build_install_psk(InstallPsk(psk=psk, key_version=key_version))
    return seal_command(keys, spi=spi, tar=tar, counter=counter, data=data)


def build_install_psk_sms(keys: OtaKeys, *, counter: int, psk: bytes, key_version: int,
                          originating_address: SmsAddress,
                          service_centre_time_stamp: bytes = bytes(7),
                          tar: bytes = SAFE2_OTA_TAR, spi: Spi = ROTATION_SPI) -> bytes:
    """The SMS-DELIVER TPDU (PID 7F, DCS F6, UDH 70) carrying the install-PSK command.

    `originating_address` is the OTA server's address; a PoR by SMS-SUBMIT goes back to it.
    """
    packet = build_install_psk_command(keys, counter=counter, psk=psk, key_version=key_version,
                                       tar=tar, spi=spi)
    return build_sms_deliver(SmsDeliver(
        originating_address=originating_address, user_data=build_command_user_data(packet),
        protocol_identifier=PID_SIM_DATA_DOWNLOAD, data_coding_scheme=DCS_CLASS2_8BIT,
        service_centre_time_stamp=service_centre_time_stamp))


def build_install_psk_envelope(keys: OtaKeys, *, counter: int, psk: bytes, key_version: int,
                               originating_address: SmsAddress,
                               service_centre: SmsAddress | None = None,
                               service_centre_time_stamp: bytes = bytes(7),
                               tar: bytes = SAFE2_OTA_TAR, spi: Spi = ROTATION_SPI) -> bytes:
    """The ENVELOPE data (D1 ...) that a modem hands the SIM for that SMS."""
    tpdu = build_install_psk_sms(keys, counter=counter, psk=psk, key_version=key_version,
                                 originating_address=originating_address,
                                 service_centre_time_stamp=service_centre_time_stamp,
                                 tar=tar, spi=spi)
    return build_sms_pp_download(tpdu, service_centre)


@dataclass(frozen=True)
class PorResult:
    """A checked proof of receipt.

    Attributes:
        status: TS 102 225 response status (0 = the security layer accepted the command).
        counter: the CNTR the card echoed (0 in an unverified error report).
        verified: the PoR carried a CC that checked out; False for an unsecured error report,
            which anybody could have forged.
        install: the applet's InstallResult (present when status is 0).
    """

    status: int
    counter: int
    verified: bool
    install: InstallResult | None

    @property
    def installed(self) -> bool:
        """The card says (authenticated) that the new key is in force."""
        return (self.verified and self.status == ResponseStatus.POR_OK
                and self.install is not None and self.install.ok)

    def describe(self) -> str:
        text = status_name(self.status)
        if self.install is not None:
            text += f", SW {self.install.status_word:04X}, version {self.install.key_version}"
        return text + ("" if self.verified else " (unverified)")


def check_por(keys: OtaKeys, user_data: bytes, *, expected_counter: int | None = None,
              tar: bytes = SAFE2_OTA_TAR, spi: Spi = ROTATION_SPI) -> PorResult:
    """Check a PoR given as SMS user data (02 71 00 RPL ...), as found in the
    SMS-DELIVER-REPORT (the ENVELOPE response) or in an SMS-SUBMIT.

    Args:
        expected_counter: the CNTR of the command this PoR answers, if known; a verified PoR
            with another counter is refused.

    Raises:
        OtaDecodeError: malformed PoR (lengths, UDH, install result layout).
        OtaSecurityError: CC mismatch, bad padding, or an unsecured "PoR OK".
        OtaProtocolError: the TAR or the counter is not the one expected.
    """
    packet = parse_response_packet(parse_response_user_data(user_data))
    if packet.tar != tar:
        raise OtaProtocolError(f"PoR for TAR {packet.tar.hex()}, expected {tar.hex()}")
    opened = open_response(packet, keys, spi=spi)
    if opened.verified and expected_counter is not None and opened.counter != expected_counter:
        raise OtaProtocolError(f"PoR echoes CNTR {opened.counter}, expected {expected_counter}")
    install = None
    if opened.status == ResponseStatus.POR_OK:
        install = parse_install_result(opened.data)
    elif opened.data:
        raise OtaDecodeError(f"PoR {status_name(opened.status)} carries unexpected data")
    return PorResult(status=opened.status, counter=opened.counter, verified=opened.verified,
                     install=install)


def por_user_data_from_sms_submit(tpdu: bytes) -> bytes:
    """The PoR user data from an SMS-SUBMIT that a card sent (SPI 'PoR via SMS-SUBMIT')."""
    sms = parse_sms_submit(tpdu)
    if not sms.tp_udhi:
        raise OtaDecodeError("SMS-SUBMIT: TP-UDHI clear, a response packet needs the UDH")
    return sms.user_data
