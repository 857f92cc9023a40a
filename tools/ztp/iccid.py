"""ICCID helpers shared by the SIM, gateway and service.

ICCID: ITU-T E.118 (18-20 decimal digits, the last one a Luhn check digit computed over the
others, ISO/IEC 7812-1 Annex B). EF_ICCID: ETSI TS 102 221 §13.2, 10 bytes of BCD with the
nibbles of each byte swapped (first digit in the low nibble), an odd or short number padded
with 'F' nibbles at the end. Example (SAFE2-PROTOCOL.md): ICCID 8944502509186389635 <->
EF_ICCID ``98 44 05 52 90 81 36 98 36 F5``.

Naming: ``iccid`` is the decimal string, ``ef_iccid`` the 10 raw bytes, ``*_hex`` lowercase hex
of those bytes (the PSK identity as the gateway and the HTTP paths carry it).
"""

from __future__ import annotations

__all__ = [
    "EF_ICCID_LEN",
    "ICCID_MAX_DIGITS",
    "ICCID_MIN_DIGITS",
    "IccidError",
    "build_ef_iccid",
    "iccid_from_hex",
    "iccid_to_hex",
    "luhn_check_digit",
    "luhn_valid",
    "normalize_iccid",
    "parse_ef_iccid",
]

EF_ICCID_LEN = 10  # TS 102 221 §13.2: EF_ICCID is 10 bytes
ICCID_MIN_DIGITS = 18
ICCID_MAX_DIGITS = 20  # E.118: at most 19 digits + check digit (20 in practice)


class IccidError(ValueError):
    """An ICCID or EF_ICCID value that is malformed; the message says what and why."""


def luhn_check_digit(payload: str) -> str:
    """Return the Luhn check digit (ISO/IEC 7812-1 Annex B) for a string of decimal digits.

    Raises:
        IccidError: ``payload`` is empty or holds a non-digit.
    """
    if not payload or not payload.isascii() or not payload.isdigit():
        raise IccidError(f"Luhn payload must be decimal digits, got {payload!r}")
    total = 0
    # Double every second digit counting from the right, starting with the rightmost payload
    # digit (it sits next to the check digit).
    for i, ch in enumerate(reversed(payload)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(iccid: str) -> bool:
    """True when the last digit of ``iccid`` is the Luhn check digit of the others."""
    if len(iccid) < 2 or not iccid.isascii() or not iccid.isdigit():
        return False
    return luhn_check_digit(iccid[:-1]) == iccid[-1]


def normalize_iccid(iccid: str, *, check_luhn: bool = True) -> str:
    """Validate an ICCID given as text and return it as a plain digit string.

    Spaces and dashes are removed (vendor key files print ICCIDs grouped). A trailing ``F``
    filler (as read from EF_ICCID) is not accepted here: use :func:`parse_ef_iccid` for that.

    Args:
        iccid: decimal digits, 18-20 of them.
        check_luhn: refuse a wrong Luhn check digit (the default); ``False`` to force.

    Raises:
        IccidError: not digits, wrong length, or (with ``check_luhn``) wrong check digit.
    """
    if not isinstance(iccid, str):
        raise IccidError(f"ICCID must be a string, got {type(iccid).__name__}")
    digits = iccid.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit():
        raise IccidError(f"ICCID must hold decimal digits only, got {iccid!r}")
    if not ICCID_MIN_DIGITS <= len(digits) <= ICCID_MAX_DIGITS:
        raise IccidError(
            f"ICCID must be {ICCID_MIN_DIGITS}-{ICCID_MAX_DIGITS} digits, got {len(digits)}"
        )
    if check_luhn and not luhn_valid(digits):
        raise IccidError(
            f"ICCID {digits} fails the Luhn check: expected check digit "
            f"{luhn_check_digit(digits[:-1])}, got {digits[-1]}"
        )
    return digits


def build_ef_iccid(iccid: str, *, check_luhn: bool = True) -> bytes:
    """Encode an ICCID as the 10 bytes of EF_ICCID (nibble-swapped BCD, 'F' filler).

    Raises:
        IccidError: as :func:`normalize_iccid`.
    """
    digits = normalize_iccid(iccid, check_luhn=check_luhn)
    nibbles = digits.ljust(2 * EF_ICCID_LEN, "F")
    # TS 102 221 §13.2: the first digit goes into the low nibble of the first byte.
    return bytes(int(nibbles[i + 1] + nibbles[i], 16) for i in range(0, len(nibbles), 2))


def parse_ef_iccid(ef_iccid: bytes, *, check_luhn: bool = False) -> str:
    """Decode the 10 bytes of EF_ICCID into the ICCID digit string.

    Strict: exactly 10 bytes; every nibble 0-9 except an 'F' filler that may only run to the
    end; 18-20 digits must remain. The Luhn check is off by default (a SIM's identity is what
    it is; registries decide), on with ``check_luhn=True``.

    Raises:
        IccidError: wrong length, a nibble A-E, an 'F' before a digit, or too few digits.
    """
    if not isinstance(ef_iccid, bytes | bytearray | memoryview):
        raise IccidError(f"EF_ICCID must be bytes, got {type(ef_iccid).__name__}")
    raw = bytes(ef_iccid)
    if len(raw) != EF_ICCID_LEN:
        raise IccidError(f"EF_ICCID must be {EF_ICCID_LEN} bytes, got {len(raw)}")
    digits: list[str] = []
    filler = False
    for pos, byte in enumerate(raw):
        for nibble in (byte & 0x0F, byte >> 4):
            if nibble == 0x0F:
                filler = True
            elif nibble > 9:
                raise IccidError(f"EF_ICCID byte {pos} ({byte:02X}) holds a non-BCD nibble")
            elif filler:
                raise IccidError(f"EF_ICCID byte {pos} ({byte:02X}): digit after 'F' filler")
            else:
                digits.append(chr(48 + nibble))
    iccid = "".join(digits)
    if len(iccid) < ICCID_MIN_DIGITS:
        raise IccidError(f"EF_ICCID holds {len(iccid)} digits, need {ICCID_MIN_DIGITS}-20")
    if check_luhn and not luhn_valid(iccid):
        raise IccidError(f"ICCID {iccid} fails the Luhn check")
    return iccid


def iccid_to_hex(iccid: str, *, check_luhn: bool = True) -> str:
    """ICCID digits -> lowercase hex of EF_ICCID (the PSK identity as written in HTTP paths)."""
    return build_ef_iccid(iccid, check_luhn=check_luhn).hex()


def iccid_from_hex(ef_iccid_hex: str, *, check_luhn: bool = False) -> str:
    """Lowercase or uppercase hex of EF_ICCID (20 hex characters) -> ICCID digits.

    Raises:
        IccidError: not 20 hex characters, or as :func:`parse_ef_iccid`.
    """
    if not isinstance(ef_iccid_hex, str) or len(ef_iccid_hex) != 2 * EF_ICCID_LEN:
        raise IccidError(f"EF_ICCID hex must be {2 * EF_ICCID_LEN} hex characters")
    try:
        raw = bytes.fromhex(ef_iccid_hex)
    except ValueError:
        raise IccidError(f"EF_ICCID hex is not hex: {ef_iccid_hex!r}") from None
    return parse_ef_iccid(raw, check_luhn=check_luhn)
