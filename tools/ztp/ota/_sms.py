# SMS transport of secured packets: 3GPP TS 23.040 (v16) TPDUs, the user data header, the
# 3GPP TS 31.115 (v15) §4 framing (UDH IEI 0x70 command packet / 0x71 response packet), and the
# ENVELOPE (SMS-PP DOWNLOAD, tag D1) of ETSI TS 102 223 §7.1 / 3GPP TS 31.111 §7.1.1.
#
# Abbreviations: TPDU transfer protocol data unit, TP-OA / TP-DA originating / destination
# address, PID protocol identifier, DCS data coding scheme, SCTS service centre time stamp,
# UDL / UD / UDH / UDHI user data length / user data / header / header indicator, IEI information
# element identifier, MR message reference, VPF / VP validity period format / validity period.
#
# Only what OTA needs: 8-bit data (TS 23.038 §4), numeric addresses (BCD, TS 23.040 §9.1.2.5),
# one SMS per packet (no concatenation). The ENVELOPE itself is built and parsed by ztp.stk.
from __future__ import annotations

from dataclasses import dataclass

from .. import stk
from ._errors import OtaDecodeError, OtaUsageError
from ._ts_102_225 import RESPONSE_UDH

IEI_COMMAND_PACKET = 0x70  # TS 31.115 §4.2 ("CPI")
IEI_RESPONSE_PACKET = 0x71  # TS 31.115 §4.4 ("RPI")
_IEI_CONCATENATED = (0x00, 0x08)  # TS 23.040 §9.2.3.24.1 / .8
COMMAND_UDH = b"\x02\x70\x00"
MAX_USER_DATA = 140  # octets in one SMS (TS 23.040 §9.2.3.16, 8-bit data)
PID_SIM_DATA_DOWNLOAD = 0x7F  # TS 23.040 §9.2.3.9: (U)SIM data download
DCS_CLASS2_8BIT = 0xF6  # TS 23.038 §4: group 1111, 8-bit data, class 2 ((U)SIM specific)
_MTI_DELIVER = 0x00
_MTI_SUBMIT = 0x01
_BCD = "0123456789*#abc"  # TS 24.008 table 10.5.118 digit coding; F is the filler


def _is_8bit(dcs: int) -> bool:
    """TS 23.038 §4: 8-bit data in the general (00xx, 01xx) or data coding (1111) groups."""
    group = dcs >> 4
    if group <= 0x7:
        return not dcs & 0x20 and (dcs >> 2) & 0x03 == 0x01  # uncompressed, alphabet 01
    if group == 0xF:
        return bool(dcs & 0x04)
    return False


@dataclass(frozen=True)
class SmsAddress:
    """A numeric address (TS 23.040 §9.1.2.5).

    Attributes:
        digits: '0'-'9', '*', '#', 'a', 'b', 'c'; 0 to 20 digits.
        ton_npi: type-of-address octet; 0x81 unknown / ISDN (as pySim's example), 0x91
            international / ISDN. Alphanumeric (TON 101) is not supported.
    """

    digits: str
    ton_npi: int = 0x81

    def __post_init__(self) -> None:
        if not isinstance(self.digits, str) or len(self.digits) > 20 or any(
                c not in _BCD for c in self.digits):
            raise OtaUsageError(f"address digits: expected up to 20 of {_BCD!r}, "
                                f"got {self.digits!r}")
        if not isinstance(self.ton_npi, int) or not 0x80 <= self.ton_npi <= 0xFF:
            raise OtaUsageError(f"type of address: expected 80..FF, got {self.ton_npi!r}")
        if (self.ton_npi >> 4) & 0x07 == 0x05:
            raise OtaUsageError("alphanumeric addresses are not supported")

    def bcd(self) -> bytes:
        """The digits as semi-octets, low nibble first, F-filled."""
        digits = self.digits + ("f" if len(self.digits) % 2 else "")
        out = bytearray()
        for i in range(0, len(digits), 2):
            low = _BCD.index(digits[i])  # the filler, if any, is always a high nibble
            high = 0xF if digits[i + 1] == "f" else _BCD.index(digits[i + 1])
            out.append(low | (high << 4))
        return bytes(out)

    def encode_tpdu_field(self) -> bytes:
        """TP-OA / TP-DA: digit count, type of address, BCD."""
        return bytes((len(self.digits), self.ton_npi)) + self.bcd()

    def encode_address_value(self) -> bytes:
        """TS 102 223 §8.1 Address object value / RP address: type of address, BCD."""
        return bytes((self.ton_npi,)) + self.bcd()


def _decode_bcd(data: bytes, count: int, what: str) -> str:
    digits = []
    for i in range(count):
        nibble = (data[i // 2] >> (4 * (i % 2))) & 0x0F
        if nibble == 0xF:
            raise OtaDecodeError(f"{what}: filler F inside the digits")
        digits.append(_BCD[nibble])
    if count % 2 and data[-1] >> 4 != 0xF:
        raise OtaDecodeError(f"{what}: odd digit count without the F filler")
    return "".join(digits)


def _pull_address(data: bytes, pos: int, what: str) -> tuple[SmsAddress, int]:
    if pos + 2 > len(data):
        raise OtaDecodeError(f"{what}: truncated address")
    count, ton_npi = data[pos], data[pos + 1]
    if count > 20:
        raise OtaDecodeError(f"{what}: {count} digits, at most 20 allowed")
    if not ton_npi & 0x80:
        raise OtaDecodeError(f"{what}: type of address {ton_npi:02X} lacks bit 8")
    if (ton_npi >> 4) & 0x07 == 0x05:
        raise OtaDecodeError(f"{what}: alphanumeric address not supported")
    end = pos + 2 + (count + 1) // 2
    if end > len(data):
        raise OtaDecodeError(f"{what}: truncated address digits")
    digits = _decode_bcd(data[pos + 2:end], count, what)
    return SmsAddress(digits, ton_npi), end


def _check_octet(value: int, name: str) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise OtaUsageError(f"{name}: expected one octet, got {value!r}")


def _check_user_data(user_data: bytes, dcs: int, udhi: bool) -> None:
    if not _is_8bit(dcs):
        raise OtaUsageError(f"DCS {dcs:02X}: only 8-bit data is supported")
    if len(user_data) > MAX_USER_DATA:
        raise OtaUsageError(f"user data of {len(user_data)} octets exceeds one SMS "
                            f"({MAX_USER_DATA})")
    if udhi and (not user_data or user_data[0] + 1 > len(user_data)):
        raise OtaUsageError("UDHI set but the user data holds no complete header")


def _pull_user_data(data: bytes, pos: int, dcs: int, what: str) -> bytes:
    if not _is_8bit(dcs):
        raise OtaDecodeError(f"{what}: DCS {dcs:02X} is not 8-bit data (TS 23.038 §4)")
    if pos >= len(data):
        raise OtaDecodeError(f"{what}: TP-UDL missing")
    udl = data[pos]
    if udl > MAX_USER_DATA:
        raise OtaDecodeError(f"{what}: TP-UDL {udl} above {MAX_USER_DATA}")
    if len(data) - pos - 1 != udl:
        raise OtaDecodeError(f"{what}: TP-UDL says {udl} octets, got {len(data) - pos - 1}")
    return data[pos + 1:]


@dataclass(frozen=True)
class SmsDeliver:
    """SMS-DELIVER TPDU (TS 23.040 §9.2.2.1), 8-bit data only.

    The tp_* flags are the raw bits of the first octet: tp_mms (bit 3; 0 = more messages are
    waiting), tp_lp (bit 4, loop prevention), tp_sri (bit 6), tp_rp (bit 8); tp_udhi (bit 7)
    says that user_data starts with a header.
    """

    originating_address: SmsAddress
    user_data: bytes
    protocol_identifier: int = PID_SIM_DATA_DOWNLOAD
    data_coding_scheme: int = DCS_CLASS2_8BIT
    service_centre_time_stamp: bytes = bytes(7)
    tp_udhi: bool = True
    tp_mms: bool = False
    tp_lp: bool = False
    tp_sri: bool = False
    tp_rp: bool = False

    def __post_init__(self) -> None:
        _check_octet(self.protocol_identifier, "TP-PID")
        _check_octet(self.data_coding_scheme, "TP-DCS")
        if len(self.service_centre_time_stamp) != 7:
            raise OtaUsageError("TP-SCTS: expected 7 octets")
        _check_user_data(self.user_data, self.data_coding_scheme, self.tp_udhi)


def build_sms_deliver(sms: SmsDeliver) -> bytes:
    first = (_MTI_DELIVER | (sms.tp_mms << 2) | (sms.tp_lp << 3) | (sms.tp_sri << 5)
             | (sms.tp_udhi << 6) | (sms.tp_rp << 7))
    return (bytes((first,)) + sms.originating_address.encode_tpdu_field()
            + bytes((sms.protocol_identifier, sms.data_coding_scheme))
            + sms.service_centre_time_stamp + bytes((len(sms.user_data),)) + sms.user_data)


def parse_sms_deliver(data: bytes) -> SmsDeliver:
    """Parse an SMS-DELIVER TPDU.

    Raises:
        OtaDecodeError: not an SMS-DELIVER, a truncated field, a non-8-bit DCS, TP-UDL not the
            exact length of the user data, or UDHI with no complete header.
    """
    data = bytes(data)
    what = "SMS-DELIVER"
    if not data:
        raise OtaDecodeError(f"{what}: empty TPDU")
    first = data[0]
    if first & 0x03 != _MTI_DELIVER:
        raise OtaDecodeError(f"{what}: TP-MTI {first & 0x03} is not SMS-DELIVER (0)")
    if first & 0x10:
        raise OtaDecodeError(f"{what}: first octet bit 5 is reserved (got {first:02X})")
    address, pos = _pull_address(data, 1, f"{what} TP-OA")
    if pos + 9 > len(data):
        raise OtaDecodeError(f"{what}: truncated before TP-UDL")
    pid, dcs = data[pos], data[pos + 1]
    scts = data[pos + 2:pos + 9]
    user_data = _pull_user_data(data, pos + 9, dcs, what)
    udhi = bool(first & 0x40)
    if udhi and (not user_data or user_data[0] + 1 > len(user_data)):
        raise OtaDecodeError(f"{what}: TP-UDHI set but the header is incomplete")
    return SmsDeliver(originating_address=address, user_data=user_data,
                      protocol_identifier=pid, data_coding_scheme=dcs,
                      service_centre_time_stamp=scts, tp_udhi=udhi, tp_mms=bool(first & 0x04),
                      tp_lp=bool(first & 0x08), tp_sri=bool(first & 0x20),
                      tp_rp=bool(first & 0x80))


_VP_LENGTH = {0: 0, 2: 1, 1: 7, 3: 7}  # TP-VPF: absent, relative, enhanced, absolute


@dataclass(frozen=True)
class SmsSubmit:
    """SMS-SUBMIT TPDU (TS 23.040 §9.2.2.2), 8-bit data only; how a card sends a PoR when the
    SPI asks for SMS-SUBMIT (by the proactive command SEND SHORT MESSAGE)."""

    destination_address: SmsAddress
    user_data: bytes
    message_reference: int = 0
    protocol_identifier: int = PID_SIM_DATA_DOWNLOAD
    data_coding_scheme: int = DCS_CLASS2_8BIT
    tp_vpf: int = 0
    validity_period: bytes = b""
    tp_udhi: bool = True
    tp_rd: bool = False
    tp_srr: bool = False
    tp_rp: bool = False

    def __post_init__(self) -> None:
        _check_octet(self.message_reference, "TP-MR")
        _check_octet(self.protocol_identifier, "TP-PID")
        _check_octet(self.data_coding_scheme, "TP-DCS")
        if self.tp_vpf not in _VP_LENGTH or len(self.validity_period) != _VP_LENGTH[
                self.tp_vpf]:
            raise OtaUsageError(f"TP-VP: {len(self.validity_period)} octets do not fit "
                                f"TP-VPF {self.tp_vpf!r}")
        _check_user_data(self.user_data, self.data_coding_scheme, self.tp_udhi)


def build_sms_submit(sms: SmsSubmit) -> bytes:
    first = (_MTI_SUBMIT | (sms.tp_rd << 2) | (sms.tp_vpf << 3) | (sms.tp_srr << 5)
             | (sms.tp_udhi << 6) | (sms.tp_rp << 7))
    return (bytes((first, sms.message_reference)) + sms.destination_address.encode_tpdu_field()
            + bytes((sms.protocol_identifier, sms.data_coding_scheme)) + sms.validity_period
            + bytes((len(sms.user_data),)) + sms.user_data)


def parse_sms_submit(data: bytes) -> SmsSubmit:
    """Parse an SMS-SUBMIT TPDU.

    Raises:
        OtaDecodeError: as parse_sms_deliver.
    """
    data = bytes(data)
    what = "SMS-SUBMIT"
    if len(data) < 2:
        raise OtaDecodeError(f"{what}: truncated TPDU")
    first = data[0]
    if first & 0x03 != _MTI_SUBMIT:
        raise OtaDecodeError(f"{what}: TP-MTI {first & 0x03} is not SMS-SUBMIT (1)")
    vpf = (first >> 3) & 0x03
    address, pos = _pull_address(data, 2, f"{what} TP-DA")
    vp_length = _VP_LENGTH[vpf]
    if pos + 2 + vp_length > len(data):
        raise OtaDecodeError(f"{what}: truncated before TP-UDL")
    pid, dcs = data[pos], data[pos + 1]
    vp = data[pos + 2:pos + 2 + vp_length]
    user_data = _pull_user_data(data, pos + 2 + vp_length, dcs, what)
    udhi = bool(first & 0x40)
    if udhi and (not user_data or user_data[0] + 1 > len(user_data)):
        raise OtaDecodeError(f"{what}: TP-UDHI set but the header is incomplete")
    return SmsSubmit(destination_address=address, user_data=user_data,
                     message_reference=data[1], protocol_identifier=pid,
                     data_coding_scheme=dcs, tp_vpf=vpf, validity_period=vp, tp_udhi=udhi,
                     tp_rd=bool(first & 0x04), tp_srr=bool(first & 0x20),
                     tp_rp=bool(first & 0x80))


# --- user data header and the TS 31.115 framing ------------------------------------------------

def parse_user_data_header(user_data: bytes) -> tuple[tuple[tuple[int, bytes], ...], bytes]:
    """Split TP-UD into its header elements ((IEI, data), ...) and the rest (TS 23.040
    §9.2.3.24).

    Raises:
        OtaDecodeError: UDHL beyond the data, or an element overrunning the header.
    """
    if not user_data:
        raise OtaDecodeError("UDH: empty user data")
    udhl = user_data[0]
    if udhl + 1 > len(user_data):
        raise OtaDecodeError(f"UDH: UDHL {udhl} beyond the {len(user_data) - 1} octets")
    header = user_data[1:udhl + 1]
    elements = []
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise OtaDecodeError("UDH: truncated information element")
        iei, length = header[pos], header[pos + 1]
        if pos + 2 + length > len(header):
            raise OtaDecodeError(f"UDH: IEI {iei:02X} length {length} overruns the header")
        elements.append((iei, bytes(header[pos + 2:pos + 2 + length])))
        pos += 2 + length
    return tuple(elements), bytes(user_data[udhl + 1:])


def build_command_user_data(command_packet: bytes) -> bytes:
    """TP-UD for one command packet: UDH (02 70 00) + CPL ... (TS 31.115 §4.2).

    Raises:
        OtaUsageError: longer than one SMS (concatenation is not implemented).
    """
    user_data = COMMAND_UDH + bytes(command_packet)
    if len(user_data) > MAX_USER_DATA:
        raise OtaUsageError(f"command packet of {len(command_packet)} octets needs more than "
                            "one SMS; concatenated SMS are not supported")
    return user_data


def parse_command_user_data(user_data: bytes) -> bytes:
    """The command packet (CPL ...) from TP-UD whose UDH holds exactly the IEI 0x70 element.

    Raises:
        OtaDecodeError: no IEI 70, IEI 70 with data, concatenation or other elements present.
    """
    elements, rest = parse_user_data_header(bytes(user_data))
    ieis = [iei for iei, _ in elements]
    if any(iei in _IEI_CONCATENATED for iei in ieis):
        raise OtaDecodeError("UDH: concatenated command packets are not supported")
    if elements != ((IEI_COMMAND_PACKET, b""),):
        raise OtaDecodeError("UDH: expected only the command packet element 70 (length 0), "
                             f"got IEIs {bytes(ieis).hex() or 'none'}")
    return rest


def build_response_user_data(response_packet: bytes) -> bytes:
    """TP-UD for a response packet: UDH (02 71 00) + RPL ... (TS 31.115 §4.4)."""
    user_data = RESPONSE_UDH + bytes(response_packet)
    if len(user_data) > MAX_USER_DATA:
        raise OtaUsageError(f"response packet of {len(response_packet)} octets exceeds one SMS")
    return user_data


def parse_response_user_data(user_data: bytes) -> bytes:
    """The response packet (RPL ...) from TP-UD. The UDH must be exactly 02 71 00: the
    response CC covers those three octets (TS 31.115 §4.4).

    Raises:
        OtaDecodeError: another header.
    """
    user_data = bytes(user_data)
    if user_data[:3] != RESPONSE_UDH:
        raise OtaDecodeError(f"response UDH: expected 027100, got {user_data[:3].hex()}")
    return user_data[3:]


# --- ENVELOPE (SMS-PP DOWNLOAD), via ztp.stk ------------------------------------------------------

def build_sms_pp_download(tpdu: bytes, service_centre: SmsAddress | None = None) -> bytes:
    """ENVELOPE data 'D1': device identities network -> UICC, optional Address (the service
    centre), SMS TPDU (TS 31.111 §7.1.1.1). The TPDU is normally an SMS-DELIVER.

    Raises:
        OtaUsageError: the ENVELOPE would exceed 255 octets.
    """
    address = service_centre.encode_address_value() if service_centre is not None else None
    try:
        return stk.build_envelope(stk.SmsPpDownload(bytes(tpdu), address))
    except ValueError as exc:
        raise OtaUsageError(f"SMS-PP DOWNLOAD: {exc}") from None


def parse_sms_pp_download(envelope: bytes) -> tuple[bytes, bytes | None]:
    """(SMS TPDU, raw Address value or None) from ENVELOPE data 'D1'.

    Raises:
        OtaDecodeError: not a well-formed SMS-PP DOWNLOAD.
    """
    try:
        parsed = stk.parse_envelope(bytes(envelope))
    except stk.StkDecodeError as exc:
        raise OtaDecodeError(str(exc)) from None
    if not isinstance(parsed, stk.SmsPpDownload):
        raise OtaDecodeError(f"ENVELOPE: expected SMS-PP DOWNLOAD (D1), got "
                             f"{type(parsed).__name__}")
    return parsed.tpdu, parsed.address
