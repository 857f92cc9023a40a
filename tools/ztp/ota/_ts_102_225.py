# Secured packets of ETSI TS 102 225 (v12) in the SMS dialect of 3GPP TS 31.115 (v15).
#
# Abbreviations (TS 102 225 §3.3): CPI/CPL command packet identifier/length, CHI/CHL command
# header identifier/length, SPI security parameter indicator, KIc key identifier for ciphering,
# KID key identifier for the RC/CC/DS, TAR toolkit application reference, CNTR counter, PCNTR
# padding counter, RC/CC/DS redundancy check / cryptographic checksum / digital signature,
# RPL/RHL response packet/header length, PoR proof of receipt.
#
# Theory of operation
# -------------------
# Command packet as it travels in one SMS (TS 31.115 §4.2; CPI is the UDH IEI 0x70, CHI is
# empty, so neither appears here):
#
#     CPL(2) CHL(1) SPI(2) KIc(1) KID(1) TAR(3) | CNTR(5) PCNTR(1) CC(8) data padding
#                                                 '-- AES-CBC, zero IV, when SPI says so --'
#
# CPL counts every byte after itself; CHL counts SPI..TAR plus CNTR, PCNTR and the CC
# (13 + len(CC)). The CC is AES-CMAC (TS 102 225 §5.1.3.1, "AES in CMAC mode"), truncated to
# its leftmost 8 bytes, over CPL CHL SPI KIc KID TAR CNTR PCNTR data padding: the plaintext,
# padding included, computed before encryption. The padding makes CNTR..padding a multiple of
# the AES block; PCNTR says how many padding bytes (zeros) were added.
#
# Response packet (TS 31.115 §4.4; RPI is the UDH IEI 0x71):
#
#     RPL(2) RHL(1) TAR(3) | CNTR(5) PCNTR(1) status(1) CC(8) data padding
#                            '-------- AES-CBC when the SPI asks for a ciphered PoR ----'
#
# RHL = 10 + len(CC). The response CC also covers the SMS UDH in front of the packet
# (UDHL IEI IEIDL = 02 71 00): the pySim known-answer vectors confirm both layouts.
#
# Only the algorithms the project uses are implemented: AES-CBC for ciphering and AES-CMAC for
# the CC (key lengths 16/24/32). The SPI parser knows RC and DS; sealing them is refused.
from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from ._errors import OtaDecodeError, OtaSecurityError, OtaUsageError

COUNTER_MAX = (1 << 40) - 1  # CNTR is 5 bytes (TS 102 225 §5.1.1)
CC_LENGTH = 8  # AES-CMAC truncated to 64 bits (TS 102 225 §5.1.3.1)
AES_BLOCK = 16
COMMAND_HEADER_FIXED = 13  # SPI(2) KIc KID TAR(3) CNTR(5) PCNTR: CHL = 13 + len(CC)
RESPONSE_HEADER_FIXED = 10  # TAR(3) CNTR(5) PCNTR status: RHL = 10 + len(CC)
# TS 31.115 §4.4: the UDH of the response (UDHL=2, IEI 0x71, IEIDL=0) is covered by the CC.
RESPONSE_UDH = b"\x02\x71\x00"

_ZERO_IV = bytes(AES_BLOCK)  # TS 102 225 §5.1.2: "the initial chaining value shall be zero"


class Checksum(enum.IntEnum):
    """SPI first octet b2b1 and second octet b4b3: RC/CC/DS (TS 102 225 §5.1.1)."""

    NONE = 0
    RC = 1  # redundancy check (CRC)
    CC = 2  # cryptographic checksum
    DS = 3  # digital signature


class CounterMode(enum.IntEnum):
    """SPI first octet b5b4 (TS 102 225 §5.1.1), ordered by strictness."""

    NO_COUNTER = 0
    AVAILABLE = 1  # counter available, no replay or sequence checking
    HIGHER = 2  # process only if CNTR is higher than the value in the RE
    ONE_HIGHER = 3  # process only if CNTR is exactly one higher than the value in the RE


class PorRequest(enum.IntEnum):
    """SPI second octet b2b1 (TS 102 225 §5.1.1). 0b11 is reserved."""

    NONE = 0
    REQUIRED = 1
    ON_ERROR = 2


class ResponseStatus(enum.IntEnum):
    """Response status codes (TS 102 225 §5.2.2 table 5, TS 31.115 §5)."""

    POR_OK = 0x00
    RC_CC_DS_FAILED = 0x01
    CNTR_LOW = 0x02
    CNTR_HIGH = 0x03
    CNTR_BLOCKED = 0x04
    CIPHERING_ERROR = 0x05
    UNIDENTIFIED_SECURITY_ERROR = 0x06
    INSUFFICIENT_MEMORY = 0x07
    MORE_TIME = 0x08
    TAR_UNKNOWN = 0x09
    INSUFFICIENT_SECURITY_LEVEL = 0x0A
    RESPONSE_IN_SMS_SUBMIT = 0x0B  # TS 31.115: actual response sent using SMS-SUBMIT
    RESPONSE_IN_USSD = 0x0C  # TS 31.115: actual response sent using USSD


def status_name(status: int) -> str:
    """`"CNTR_LOW (02)"` for a known code, `"status 5A"` otherwise (for messages)."""
    try:
        return f"{ResponseStatus(status).name} ({status:02X})"
    except ValueError:
        return f"status {status:02X}"


# KIc / KID low nibble (TS 102 225 §5.1.2, §5.1.3.1): b2b1 = 10 AES, b4b3 = 00 CBC / CMAC.
_ALGO_AES = 0x2
_ALGO_MASK = 0x0F


@dataclass(frozen=True)
class Spi:
    """Security parameter indicator (TS 102 225 §5.1.1, TS 31.115 §4.2 for b6 of octet 2).

    Attributes:
        checksum: RC/CC/DS of the command packet.
        ciphering: command packet ciphered.
        counter_mode: how the receiving entity checks CNTR.
        por: when a proof of receipt is wanted.
        por_checksum: RC/CC/DS of the response packet.
        por_ciphering: response packet ciphered.
        por_via_submit: PoR sent by SMS-SUBMIT (True) or in the SMS-DELIVER-REPORT (False).
    """

    checksum: Checksum = Checksum.CC
    ciphering: bool = True
    counter_mode: CounterMode = CounterMode.HIGHER
    por: PorRequest = PorRequest.REQUIRED
    por_checksum: Checksum = Checksum.CC
    por_ciphering: bool = True
    por_via_submit: bool = False

    def __post_init__(self) -> None:
        for name, kind in (("checksum", Checksum), ("counter_mode", CounterMode),
                           ("por", PorRequest), ("por_checksum", Checksum)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                raise OtaUsageError(f"SPI {name}: expected {kind.__name__}, got {value!r}")

    def to_bytes(self) -> bytes:
        first = (self.counter_mode << 3) | (int(self.ciphering) << 2) | self.checksum
        second = ((int(self.por_via_submit) << 5) | (int(self.por_ciphering) << 4)
                  | (self.por_checksum << 2) | self.por)
        return bytes((first, second))


def parse_spi(data: bytes) -> Spi:
    """Parse the two SPI octets.

    Raises:
        OtaDecodeError: not 2 bytes, a reserved bit set, or the reserved PoR value 0b11.
    """
    if len(data) != 2:
        raise OtaDecodeError(f"SPI: expected 2 bytes, got {len(data)}")
    first, second = data
    if first & 0xE0:
        raise OtaDecodeError(f"SPI octet 1: reserved bits b8..b6 set ({first:02X})")
    if second & 0xC0:
        raise OtaDecodeError(f"SPI octet 2: reserved bits b8..b7 set ({second:02X})")
    if second & 0x03 == 0x03:
        raise OtaDecodeError("SPI octet 2: PoR b2b1 = 11 is reserved (TS 102 225 §5.1.1)")
    return Spi(
        checksum=Checksum(first & 0x03),
        ciphering=bool(first & 0x04),
        counter_mode=CounterMode((first >> 3) & 0x03),
        por=PorRequest(second & 0x03),
        por_checksum=Checksum((second >> 2) & 0x03),
        por_ciphering=bool(second & 0x10),
        por_via_submit=bool(second & 0x20),
    )


@dataclass(frozen=True)
class OtaKeys:
    """One OTA key set: KIc (AES-CBC) and KID (AES-CMAC) with their key indexes (1..15).

    The indexes go into the high nibble of the KIc / KID octets (TS 102 225 §5.1.2). Keys are
    kept out of repr() so that they never reach a log.
    """

    kic: bytes = field(repr=False)
    kid: bytes = field(repr=False)
    kic_index: int = 1
    kid_index: int = 1

    def __post_init__(self) -> None:
        for name in ("kic", "kid"):
            key = getattr(self, name)
            if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
                raise OtaUsageError(f"{name.upper()}: expected a 16, 24 or 32-byte AES key")
        for name in ("kic_index", "kid_index"):
            index = getattr(self, name)
            if not isinstance(index, int) or not 0 <= index <= 15:
                raise OtaUsageError(f"{name}: expected 0..15, got {index!r}")

    @property
    def kic_byte(self) -> int:
        """The KIc octet: key index, AES, CBC mode."""
        return (self.kic_index << 4) | _ALGO_AES

    @property
    def kid_byte(self) -> int:
        """The KID octet: key index, AES, CMAC mode."""
        return (self.kid_index << 4) | _ALGO_AES


def _check_tar(tar: bytes) -> None:
    if not isinstance(tar, bytes) or len(tar) != 3:
        raise OtaUsageError(f"TAR: expected 3 bytes, got {tar!r}")


def _check_counter(counter: int) -> None:
    if not isinstance(counter, int) or not 0 <= counter <= COUNTER_MAX:
        raise OtaUsageError(f"CNTR: expected 0..2^40-1, got {counter!r}")


@dataclass(frozen=True)
class CommandPacket:
    """A command packet as on the wire; the secured part is still ciphered (if it was).

    Attributes:
        spi, kic, kid, tar: header fields (kic / kid are the raw octets).
        checksum_length: length of the RC/CC/DS (CHL - 13).
        secured: CNTR up to the end, exactly as transmitted (ciphertext when ciphered).
    """

    spi: Spi
    kic: int
    kid: int
    tar: bytes
    checksum_length: int
    secured: bytes

    def __post_init__(self) -> None:
        _check_tar(self.tar)
        for name in ("kic", "kid"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFF:
                raise OtaUsageError(f"{name.upper()}: expected one octet, got {value!r}")
        _check_checksum_length("command", self.spi.checksum, self.checksum_length)
        minimum = 6 + self.checksum_length
        if self.spi.ciphering:
            if not self.secured or len(self.secured) % AES_BLOCK:
                raise OtaDecodeError(
                    "command packet: ciphered part must be a non-empty multiple of "
                    f"{AES_BLOCK} bytes, got {len(self.secured)}")
            minimum = max(minimum, AES_BLOCK)
        if len(self.secured) < minimum:
            raise OtaDecodeError(f"command packet: expected at least {minimum} bytes from CNTR on, "
                                 f"got {len(self.secured)}")
        if 2 + 1 + 7 + len(self.secured) - 2 > 0xFFFF:
            raise OtaDecodeError("command packet: CPL above 65535")

    def header_bytes(self) -> bytes:
        """CPL CHL SPI KIc KID TAR: the clear part, also the start of the CC input."""
        chl = COMMAND_HEADER_FIXED + self.checksum_length
        cpl = 1 + 7 + len(self.secured)
        return (cpl.to_bytes(2, "big") + bytes((chl,)) + self.spi.to_bytes()
                + bytes((self.kic, self.kid)) + self.tar)


def _check_checksum_length(what: str, checksum: Checksum, length: int) -> None:
    allowed = {Checksum.NONE: (0,), Checksum.CC: (4, 8), Checksum.RC: (2, 4)}.get(checksum)
    if allowed is None:  # DS: length set by the algorithm, any sane value
        allowed = tuple(range(1, 242))
    if length not in allowed:
        expected = "/".join(map(str, allowed[:2]))
        raise OtaDecodeError(f"{what} packet: RC/CC/DS length {length} does not fit SPI "
                             f"{checksum.name} (expected {expected})")


def parse_command_packet(data: bytes) -> CommandPacket:
    """Parse a command packet (CPL first, as in the SMS user data after the UDH).

    Raises:
        OtaDecodeError: lengths inconsistent (CPL, CHL), SPI reserved bits, too short, or a
            ciphered part that is not a whole number of AES blocks.
    """
    data = bytes(data)
    if len(data) < 10:
        raise OtaDecodeError(f"command packet: expected at least 10 header bytes, got {len(data)}")
    cpl = int.from_bytes(data[0:2], "big")
    if cpl != len(data) - 2:
        raise OtaDecodeError(f"command packet: CPL says {cpl} bytes follow, got {len(data) - 2}")
    chl = data[2]
    if chl < COMMAND_HEADER_FIXED:
        raise OtaDecodeError(f"command packet: CHL {chl} below the minimum {COMMAND_HEADER_FIXED}")
    spi = parse_spi(data[3:5])
    return CommandPacket(spi=spi, kic=data[5], kid=data[6], tar=data[7:10],
                         checksum_length=chl - COMMAND_HEADER_FIXED, secured=data[10:])


def build_command_packet(packet: CommandPacket) -> bytes:
    """Serialize a command packet; `parse_command_packet(build_command_packet(p)) == p`."""
    return packet.header_bytes() + packet.secured


@dataclass(frozen=True)
class ResponsePacket:
    """A response packet as on the wire (RPL first); the secured part may still be ciphered."""

    tar: bytes
    checksum_length: int
    secured: bytes

    def __post_init__(self) -> None:
        _check_tar(self.tar)
        if self.checksum_length not in (0, 4, 8) and not 0 < self.checksum_length < 242:
            raise OtaDecodeError(f"response packet: bad RC/CC/DS length {self.checksum_length}")
        if len(self.secured) < 7 + self.checksum_length:
            minimum = 7 + self.checksum_length
            raise OtaDecodeError(f"response packet: expected at least {minimum} bytes from "
                                 f"CNTR on, got {len(self.secured)}")
        if 1 + 3 + len(self.secured) > 0xFFFF:
            raise OtaDecodeError("response packet: RPL above 65535")

    def header_bytes(self) -> bytes:
        rpl = 1 + 3 + len(self.secured)
        rhl = RESPONSE_HEADER_FIXED + self.checksum_length
        return rpl.to_bytes(2, "big") + bytes((rhl,)) + self.tar


def parse_response_packet(data: bytes) -> ResponsePacket:
    """Parse a response packet (RPL first, as in the SMS user data after the UDH).

    Raises:
        OtaDecodeError: RPL / RHL inconsistent with the length, or too short.
    """
    data = bytes(data)
    if len(data) < 6:
        raise OtaDecodeError(f"response packet: expected at least 6 header bytes, got {len(data)}")
    rpl = int.from_bytes(data[0:2], "big")
    if rpl != len(data) - 2:
        raise OtaDecodeError(f"response packet: RPL says {rpl} bytes follow, got {len(data) - 2}")
    rhl = data[2]
    if rhl < RESPONSE_HEADER_FIXED:
        raise OtaDecodeError(f"response packet: RHL {rhl} below the minimum "
                             f"{RESPONSE_HEADER_FIXED}")
    return ResponsePacket(tar=data[3:6], checksum_length=rhl - RESPONSE_HEADER_FIXED,
                          secured=data[6:])


def build_response_packet(packet: ResponsePacket) -> bytes:
    """Serialize a response packet; `parse_response_packet(build_response_packet(p)) == p`."""
    return packet.header_bytes() + packet.secured


# --- AES primitives (cryptography does the block cipher and CMAC; framing is ours) -------------

def _aes_cbc_encrypt(key: bytes, plaintext: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).encryptor()
    return encryptor.update(plaintext) + encryptor.finalize()


def _aes_cbc_decrypt(key: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_ZERO_IV)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _aes_cmac(key: bytes, data: bytes, length: int) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()[:length]  # leftmost bytes (TS 102 225 §5.1.3.1)


def _padding_count(plain_length: int, ciphering: bool) -> int:
    return (-plain_length) % AES_BLOCK if ciphering else 0


def _cc_length(checksum: Checksum, what: str) -> int:
    if checksum == Checksum.CC:
        return CC_LENGTH
    if checksum == Checksum.NONE:
        return 0
    raise OtaUsageError(f"{what}: RC/CC/DS {checksum.name} is not supported (only CC or none)")


# --- command packets: seal (sending entity) and open (receiving entity) -------------------------

def seal_command(keys: OtaKeys, *, spi: Spi, tar: bytes, counter: int, data: bytes) -> bytes:
    """Build a secured command packet (TS 102 225 §5.1, TS 31.115 §4.2).

    Args:
        keys: KIc / KID and their indexes.
        spi: the security asked for; checksum must be CC or NONE.
        tar: 3-byte TAR of the target application.
        counter: CNTR (0..2^40-1); the caller keeps the per-SIM counter.
        data: the application data (secured data before padding).

    Returns:
        CPL .. end of the packet (prefix the UDH 02 70 00 for an SMS).

    Raises:
        OtaUsageError: bad TAR / counter, or an unsupported RC/DS.
    """
    _check_tar(tar)
    _check_counter(counter)
    cc_length = _cc_length(spi.checksum, "command SPI")
    pcntr = _padding_count(6 + cc_length + len(data), spi.ciphering)
    padded = bytes(data) + bytes(pcntr)
    counters = counter.to_bytes(5, "big") + bytes((pcntr,))
    # The header depends only on lengths, so it is known before the CC is.
    shell = CommandPacket(spi=spi, kic=keys.kic_byte, kid=keys.kid_byte, tar=tar,
                          checksum_length=cc_length,
                          secured=bytes(len(counters) + cc_length + len(padded)))
    header = shell.header_bytes()
    cc = _aes_cmac(keys.kid, header + counters + padded, cc_length) if cc_length else b""
    plaintext = counters + cc + padded
    secured = _aes_cbc_encrypt(keys.kic, plaintext) if spi.ciphering else plaintext
    return header + secured


@dataclass(frozen=True)
class OpenedCommand:
    """A command packet whose security has been removed and checked (but not its counter)."""

    spi: Spi
    tar: bytes
    counter: int
    data: bytes = field(repr=False)  # application data, padding removed


def open_command(packet: CommandPacket, keys: OtaKeys) -> OpenedCommand:
    """Decrypt and check the CC of a command packet, in this order (TS 102 225 §5).

    The counter is returned, not checked: the receiving entity owns the counter state.

    Raises:
        OtaSecurityError: status CIPHERING_ERROR (KIc not AES-CBC with our key index, or a bad
            PCNTR), RC_CC_DS_FAILED (KID not ours, CC length other than 8, CC mismatch), or
            UNIDENTIFIED_SECURITY_ERROR (RC or DS asked for).
    """
    spi = packet.spi
    if spi.ciphering:
        if packet.kic != keys.kic_byte:
            raise OtaSecurityError(ResponseStatus.CIPHERING_ERROR,
                                   f"KIc {packet.kic:02X}: expected AES-CBC with key "
                                   f"{keys.kic_index} ({keys.kic_byte:02X})")
        plaintext = _aes_cbc_decrypt(keys.kic, packet.secured)
    else:
        plaintext = packet.secured
    if spi.checksum in (Checksum.RC, Checksum.DS):
        raise OtaSecurityError(ResponseStatus.UNIDENTIFIED_SECURITY_ERROR,
                               f"SPI asks for {spi.checksum.name}, only CC is supported")
    cc_length = packet.checksum_length
    if spi.checksum == Checksum.CC:
        if packet.kid != keys.kid_byte:
            raise OtaSecurityError(ResponseStatus.RC_CC_DS_FAILED,
                                   f"KID {packet.kid:02X}: expected AES-CMAC with key "
                                   f"{keys.kid_index} ({keys.kid_byte:02X})")
        if cc_length != CC_LENGTH:
            raise OtaSecurityError(ResponseStatus.RC_CC_DS_FAILED,
                                   f"CC length {cc_length}: expected {CC_LENGTH}")
        received = plaintext[6:6 + cc_length]
        expected = _aes_cmac(keys.kid, packet.header_bytes() + plaintext[:6]
                             + plaintext[6 + cc_length:], cc_length)
        if not hmac.compare_digest(received, expected):
            raise OtaSecurityError(ResponseStatus.RC_CC_DS_FAILED,
                                   "command packet: cryptographic checksum mismatch")
    counter = int.from_bytes(plaintext[0:5], "big")
    pcntr = plaintext[5]
    body = plaintext[6 + cc_length:]
    if pcntr != _padding_count(6 + cc_length + len(body) - pcntr, spi.ciphering) or pcntr > len(
            body):
        raise OtaSecurityError(ResponseStatus.CIPHERING_ERROR,
                               f"PCNTR {pcntr} inconsistent with {len(body)} secured bytes"
                               + ("" if spi.ciphering else " (not ciphered)"))
    return OpenedCommand(spi=spi, tar=packet.tar, counter=counter,
                         data=body[:len(body) - pcntr])


# --- response packets -------------------------------------------------------------------------

def seal_response(keys: OtaKeys | None, *, spi: Spi, tar: bytes, counter: int, status: int,
                  data: bytes = b"") -> bytes:
    """Build a response packet (PoR) as the command's SPI asks (TS 31.115 §4.4).

    Args:
        keys: the key set of the TAR; None only for an unsecured PoR (spi.por_checksum NONE and
            not ciphered), e.g. when the TAR is unknown.
        spi: the SPI of the command packet (its PoR bits apply).
        tar, counter: echoed from the command packet.
        status: response status code (0..255).
        data: additional response data.

    Returns:
        RPL .. end (prefix RESPONSE_UDH for the SMS user data).

    Raises:
        OtaUsageError: bad TAR / counter / status, RC or DS asked for, or keys missing.
    """
    _check_tar(tar)
    _check_counter(counter)
    if not isinstance(status, int) or not 0 <= status <= 0xFF:
        raise OtaUsageError(f"status: expected one octet, got {status!r}")
    cc_length = _cc_length(spi.por_checksum, "PoR SPI")
    if keys is None and (cc_length or spi.por_ciphering):
        raise OtaUsageError("a ciphered or checksummed PoR needs keys")
    pcntr = _padding_count(7 + cc_length + len(data), spi.por_ciphering)
    padded = bytes(data) + bytes(pcntr)
    head = counter.to_bytes(5, "big") + bytes((pcntr, status))
    shell = ResponsePacket(tar=tar, checksum_length=cc_length,
                           secured=bytes(len(head) + cc_length + len(padded)))
    header = shell.header_bytes()
    cc = b""
    if cc_length:
        assert keys is not None
        cc = _aes_cmac(keys.kid, RESPONSE_UDH + header + head + padded, cc_length)
    plaintext = head + cc + padded
    if spi.por_ciphering:
        assert keys is not None
        return header + _aes_cbc_encrypt(keys.kic, plaintext)
    return header + plaintext


def seal_unsecured_response(*, tar: bytes, status: int, counter: int = 0) -> bytes:
    """A PoR with neither CC nor ciphering: what a card sends when it cannot or must not use
    keys (TAR unknown, or the command failed its security checks)."""
    return seal_response(None, spi=Spi(por_checksum=Checksum.NONE, por_ciphering=False),
                         tar=tar, counter=counter, status=status)


@dataclass(frozen=True)
class OpenedResponse:
    """A response packet with its security removed.

    Attributes:
        verified: True when a CC was present and checked. False for an unsecured PoR, which
            anybody could have sent: use it as a hint, never as proof.
    """

    tar: bytes
    counter: int
    status: int
    data: bytes
    verified: bool


def open_response(packet: ResponsePacket, keys: OtaKeys, *, spi: Spi) -> OpenedResponse:
    """Decrypt and check a response packet against the SPI of the command we sent.

    An unsecured PoR (RHL 10, not ciphered) is accepted only with a non-zero status (an error
    report from a card that could not use its keys); it comes back with verified=False.

    Raises:
        OtaDecodeError: lengths do not fit the SPI.
        OtaSecurityError: CC mismatch, bad PCNTR, or an unsecured PoR claiming success when a
            secured one was asked for (status RC_CC_DS_FAILED / CIPHERING_ERROR).
    """
    wanted_cc = _cc_length(spi.por_checksum, "PoR SPI")
    secured = packet.secured
    unsecured = (packet.checksum_length == 0 and (wanted_cc or spi.por_ciphering)
                 and len(secured) == 7)  # CNTR PCNTR status, no data: an error report
    if unsecured:
        pcntr, status = secured[5], secured[6]
        if pcntr != 0 or status == ResponseStatus.POR_OK:
            raise OtaSecurityError(ResponseStatus.RC_CC_DS_FAILED,
                                   "unsecured PoR where a secured one was asked for")
        return OpenedResponse(tar=packet.tar, counter=int.from_bytes(secured[:5], "big"),
                              status=status, data=b"", verified=False)
    if packet.checksum_length != wanted_cc:
        raise OtaDecodeError(f"response packet: RHL gives a {packet.checksum_length}-byte CC, "
                             f"SPI asks for {wanted_cc}")
    if spi.por_ciphering:
        if len(secured) % AES_BLOCK:
            raise OtaDecodeError(f"response packet: ciphered part of {len(secured)} bytes is "
                                 f"not a multiple of {AES_BLOCK}")
        plaintext = _aes_cbc_decrypt(keys.kic, secured)
    else:
        plaintext = secured
    cc_end = 7 + wanted_cc
    if wanted_cc:
        expected = _aes_cmac(keys.kid, RESPONSE_UDH + packet.header_bytes() + plaintext[:7]
                             + plaintext[cc_end:], wanted_cc)
        if not hmac.compare_digest(plaintext[7:cc_end], expected):
            raise OtaSecurityError(ResponseStatus.RC_CC_DS_FAILED,
                                   "response packet: cryptographic checksum mismatch")
    pcntr = plaintext[5]
    body = plaintext[cc_end:]
    if pcntr != _padding_count(cc_end + len(body) - pcntr, spi.por_ciphering) or pcntr > len(
            body):
        raise OtaSecurityError(ResponseStatus.CIPHERING_ERROR,
                               f"response PCNTR {pcntr} inconsistent with {len(body)} bytes")
    return OpenedResponse(tar=packet.tar, counter=int.from_bytes(plaintext[:5], "big"),
                          status=plaintext[6], data=body[:len(body) - pcntr],
                          verified=bool(wanted_cc))
