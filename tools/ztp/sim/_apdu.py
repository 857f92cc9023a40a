"""Command APDUs and status words of the virtual card: ISO/IEC 7816-4 and ETSI TS 102 221 v15.

The card sees APDUs as AT+CSIM carries them: the T=0 command TPDU ``CLA INS P1 P2 [P3 data]``
(TS 102 221 §7.3.1.1). ``P3`` is Lc when data follows and Le otherwise; a trailing Le after the
data (the T=1 / short case 4 form some modems pass through) is accepted. CLA coding is
TS 102 221 §10.1.1 (Table 10.3):

    0000 xxcc  ('0X')  ISO interindustry, channels 0-3 (cc), xx = secure messaging
    01xx cccc  ('4X'/'6X') ISO further interindustry, channels 4-19 (cccc = N - 4)
    1000 xxcc  ('8X')  TS 102 221 proprietary (CAT: TERMINAL PROFILE, FETCH, ...), channels 0-3
    11xx cccc  ('CX'/'EX') proprietary, channels 4-19

Abbreviations: SW = status word SW1 SW2, Lc/Le = command/expected data length, SM = secure
messaging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Status words (TS 102 221 §10.2.1, ISO/IEC 7816-4 §5.6).
SW_OK: Final = 0x9000
SW1_PROACTIVE: Final = 0x91  # normal ending, proactive command of SW2 bytes pending
SW1_RESPONSE_AVAILABLE: Final = 0x61  # SW2 bytes waiting for GET RESPONSE ('00' = 256)
SW1_WRONG_LE: Final = 0x6C  # wrong Le; SW2 = the exact length
SW_TOOLKIT_BUSY: Final = 0x9300
SW_WRONG_LENGTH: Final = 0x6700
SW_LOGICAL_CHANNEL_NOT_SUPPORTED: Final = 0x6881
SW_SM_NOT_SUPPORTED: Final = 0x6882
SW_CHAINING_NOT_SUPPORTED: Final = 0x6884
SW_CONDITIONS_NOT_SATISFIED: Final = 0x6985
SW_NO_CURRENT_EF: Final = 0x6986
SW_WRONG_DATA: Final = 0x6A80
SW_FUNCTION_NOT_SUPPORTED: Final = 0x6A81  # MANAGE CHANNEL: no free channel
SW_FILE_NOT_FOUND: Final = 0x6A82
SW_INCORRECT_P1P2: Final = 0x6A86
SW_WRONG_P1P2: Final = 0x6B00  # READ BINARY offset outside the EF
SW_INS_NOT_SUPPORTED: Final = 0x6D00
SW_CLA_NOT_SUPPORTED: Final = 0x6E00
SW_TECHNICAL_PROBLEM: Final = 0x6F00

# Instructions (TS 102 221 §10.1.2 Table 10.5, ISO/IEC 7816-4 §5.4).
INS_MANAGE_CHANNEL: Final = 0x70
INS_SELECT: Final = 0xA4
INS_READ_BINARY: Final = 0xB0
INS_GET_RESPONSE: Final = 0xC0
INS_STATUS: Final = 0xF2
INS_TERMINAL_PROFILE: Final = 0x10
INS_FETCH: Final = 0x12
INS_TERMINAL_RESPONSE: Final = 0x14
INS_ENVELOPE: Final = 0xC2
# SAFE2 applet (SAFE2-PROTOCOL.md), CLA '0X'.
INS_SAFE2_PUT: Final = 0xDA
INS_SAFE2_GET: Final = 0xCA
INS_SAFE2_STATUS: Final = 0xCC

MAX_CHANNEL: Final = 19  # TS 102 221 §10.1.1: channels 0..19


class ApduFormatError(Exception):
    """The command APDU cannot be taken apart; ``sw`` is what the card answers."""

    def __init__(self, sw: int, message: str) -> None:
        super().__init__(message)
        self.sw = sw


@dataclass(frozen=True)
class Command:
    """One command APDU, taken apart.

    ``proprietary``: CLA '8X'/'CX' (TS 102 221 class) rather than ISO '0X'/'4X'.
    ``p3``: the raw P3 byte, or None for a 4-byte (case 1) APDU. ``data``: the command data
    (empty when P3 is Le). ``le``: the expected length when given (0 means 256), else None.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    channel: int
    proprietary: bool
    p3: int | None
    data: bytes
    le: int | None

    @property
    def ne(self) -> int | None:
        """Le as a byte count (P3 '00' -> 256), or None when absent."""
        if self.le is None:
            return None
        return self.le or 256


def decode_cla(cla: int) -> tuple[int, bool]:
    """(logical channel, proprietary) of a CLA byte, TS 102 221 §10.1.1.

    Raises:
        ApduFormatError: 6E00 for an unknown class (e.g. GSM 'A0', 'FF'), 6882 for secure
            messaging, 6884 for command chaining.
    """
    kind = cla & 0xC0
    if cla == 0xFF or (cla & 0xE0) == 0xA0 or (cla & 0xE0) == 0x20:
        raise ApduFormatError(SW_CLA_NOT_SUPPORTED, f"CLA {cla:02X} not supported")
    if kind in (0x00, 0x80):
        if cla & 0x30 == 0x10:
            raise ApduFormatError(SW_CHAINING_NOT_SUPPORTED, "command chaining not supported")
        if cla & 0x30:
            raise ApduFormatError(SW_CLA_NOT_SUPPORTED, f"CLA {cla:02X} not supported")
        if cla & 0x0C:
            raise ApduFormatError(SW_SM_NOT_SUPPORTED, "secure messaging not supported")
        return cla & 0x03, kind == 0x80
    # '4X'/'6X' and 'CX'/'EX': b6 = chaining, b5 = secure messaging, b4-b1 = N - 4.
    if cla & 0x10:
        raise ApduFormatError(SW_CHAINING_NOT_SUPPORTED, "command chaining not supported")
    if cla & 0x20:
        raise ApduFormatError(SW_SM_NOT_SUPPORTED, "secure messaging not supported")
    return 4 + (cla & 0x0F), kind == 0xC0


def parse_command(apdu: bytes) -> Command:
    """Take a command APDU apart.

    Raises:
        ApduFormatError: 6700 for a length that matches no APDU case, CLA errors as
            :func:`decode_cla`.
    """
    if len(apdu) < 4:
        raise ApduFormatError(SW_WRONG_LENGTH, f"APDU of {len(apdu)} bytes, at least 4")
    if len(apdu) > 5 + 255 + 1:
        raise ApduFormatError(SW_WRONG_LENGTH, f"APDU of {len(apdu)} bytes, at most 261")
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    channel, proprietary = decode_cla(cla)
    if ins & 0xF0 in (0x60, 0x90):
        # ISO/IEC 7816-3 §10.3.2: INS '6X' and '9X' are invalid (procedure bytes).
        raise ApduFormatError(SW_INS_NOT_SUPPORTED, f"INS {ins:02X} is invalid")
    if len(apdu) == 4:
        return Command(cla, ins, p1, p2, channel, proprietary, None, b"", None)
    p3 = apdu[4]
    if len(apdu) == 5:
        return Command(cla, ins, p1, p2, channel, proprietary, p3, b"", p3)
    if p3 == 0:
        raise ApduFormatError(SW_WRONG_LENGTH, "Lc = 0 followed by data")
    body = apdu[5:]
    if len(body) == p3:
        return Command(cla, ins, p1, p2, channel, proprietary, p3, bytes(body), None)
    if len(body) == p3 + 1:
        return Command(cla, ins, p1, p2, channel, proprietary, p3, bytes(body[:-1]), body[-1])
    raise ApduFormatError(SW_WRONG_LENGTH, f"Lc = {p3} but {len(body)} bytes follow the header")


def sw_bytes(sw: int) -> bytes:
    return sw.to_bytes(2, "big")
