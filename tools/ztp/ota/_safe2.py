# The SAFE2 applet's OTA command: "install PSK" (this project's format, documented in
# docs/ota.md; nothing public defines one for SAFE2).
#
# Carried as the secured data of a TS 102 225 command packet addressed to SAFE2_OTA_TAR.
# Simple BER-TLV (ISO/IEC 8825-1, one-byte lengths), strict: exactly these objects, in this
# order, with these lengths, nothing after them.
#
#   command  A0 13  80 01 <key version 01..FF>  81 10 <PSK, 16 bytes>
#   response A1 07  80 01 <key version now installed>  82 02 <SW1 SW2>
#
# Response SW (ISO 7816-4 values):
#   9000 installed, or this very version and PSK were already installed (a retry whose first
#        copy arrived but whose PoR was lost: idempotent)
#   6985 conditions of use not satisfied: the version is older than the installed one, or equal
#        with a different PSK (never roll back, never overwrite a version in place)
#   6A80 incorrect data: the TLV is malformed
#   6581 memory failure: the store could not write; the old key is still in force
#
# The install itself goes through PskStorage, which the virtual SIM implements with an atomic
# write (a power cut leaves either the old or the new key whole, never a mix).
from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from typing import Protocol

from ._errors import OtaDecodeError, OtaUsageError

SAFE2_OTA_TAR = b"SF2"  # 53 46 32 (assumed): a TAR set by the applet's install parameters
PSK_LENGTH = 16
TAG_INSTALL_PSK = 0xA0
TAG_INSTALL_RESULT = 0xA1
TAG_KEY_VERSION = 0x80
TAG_PSK = 0x81
TAG_STATUS_WORD = 0x82


class InstallStatus(enum.IntEnum):
    """The SW reported in the install result (ISO 7816-4 values)."""

    OK = 0x9000
    CONDITIONS_NOT_SATISFIED = 0x6985
    INCORRECT_DATA = 0x6A80
    MEMORY_FAILURE = 0x6581


@dataclass(frozen=True)
class InstallPsk:
    """The install-PSK command: a new 16-byte PSK and its key version (1..255)."""

    psk: bytes = field(repr=False)
    key_version: int

    def __post_init__(self) -> None:
        if not isinstance(self.psk, bytes) or len(self.psk) != PSK_LENGTH:
            raise OtaUsageError(f"PSK: expected {PSK_LENGTH} bytes")
        if not isinstance(self.key_version, int) or not 1 <= self.key_version <= 0xFF:
            raise OtaUsageError(f"key version: expected 1..255, got {self.key_version!r}")


@dataclass(frozen=True)
class InstallResult:
    """The applet's answer: the key version in force after the command, and the SW."""

    key_version: int
    status_word: int

    def __post_init__(self) -> None:
        if not isinstance(self.key_version, int) or not 0 <= self.key_version <= 0xFF:
            raise OtaUsageError(f"key version: expected 0..255, got {self.key_version!r}")
        if not isinstance(self.status_word, int) or not 0 <= self.status_word <= 0xFFFF:
            raise OtaUsageError(f"SW: expected 0000..FFFF, got {self.status_word!r}")

    @property
    def ok(self) -> bool:
        return self.status_word == InstallStatus.OK


def build_install_psk(command: InstallPsk) -> bytes:
    body = (bytes((TAG_KEY_VERSION, 1, command.key_version, TAG_PSK, PSK_LENGTH))
            + command.psk)
    return bytes((TAG_INSTALL_PSK, len(body))) + body


def _expect(data: bytes, pos: int, tag: int, length: int, what: str) -> int:
    if pos + 2 > len(data):
        raise OtaDecodeError(f"{what}: expected tag {tag:02X}, data ended")
    if data[pos] != tag:
        raise OtaDecodeError(f"{what}: expected tag {tag:02X}, got {data[pos]:02X}")
    if data[pos + 1] != length:
        raise OtaDecodeError(f"{what}: tag {tag:02X} expected length {length}, "
                             f"got {data[pos + 1]}")
    if pos + 2 + length > len(data):
        raise OtaDecodeError(f"{what}: tag {tag:02X} value truncated")
    return pos + 2


def parse_install_psk(data: bytes) -> InstallPsk:
    """Parse the install-PSK command.

    Raises:
        OtaDecodeError: anything but the exact layout, or key version 0.
    """
    data = bytes(data)
    what = "install PSK"
    pos = _expect(data, 0, TAG_INSTALL_PSK, 3 + 2 + PSK_LENGTH, what)
    if len(data) != pos + 3 + 2 + PSK_LENGTH:
        raise OtaDecodeError(f"{what}: {len(data) - pos - 21} bytes after the template")
    pos = _expect(data, pos, TAG_KEY_VERSION, 1, what)
    version = data[pos]
    if version == 0:
        raise OtaDecodeError(f"{what}: key version 0 is not allowed")
    pos = _expect(data, pos + 1, TAG_PSK, PSK_LENGTH, what)
    return InstallPsk(psk=data[pos:pos + PSK_LENGTH], key_version=version)


def build_install_result(result: InstallResult) -> bytes:
    return bytes((TAG_INSTALL_RESULT, 7, TAG_KEY_VERSION, 1, result.key_version,
                  TAG_STATUS_WORD, 2)) + result.status_word.to_bytes(2, "big")


def parse_install_result(data: bytes) -> InstallResult:
    """Parse the install result found in the PoR's additional data.

    Raises:
        OtaDecodeError: anything but the exact layout.
    """
    data = bytes(data)
    what = "install result"
    pos = _expect(data, 0, TAG_INSTALL_RESULT, 7, what)
    if len(data) != 9:
        raise OtaDecodeError(f"{what}: expected 9 bytes, got {len(data)}")
    pos = _expect(data, pos, TAG_KEY_VERSION, 1, what)
    version = data[pos]
    pos = _expect(data, pos + 1, TAG_STATUS_WORD, 2, what)
    return InstallResult(key_version=version,
                         status_word=int.from_bytes(data[pos:pos + 2], "big"))


class PskStorage(Protocol):
    """What the SIM gives the applet: its current PSK slot.

    `write_psk` must be atomic: after a power cut either the old key (and version) or the new
    one is in force, whole. It raises OSError when the write failed (the old key then stays).
    """

    def read_psk(self) -> tuple[int, bytes]:
        """(key version, 16-byte PSK) in force now."""
        ...

    def write_psk(self, key_version: int, psk: bytes) -> None:
        ...


class Safe2OtaApplet:
    """The application behind SAFE2_OTA_TAR: executes install-PSK commands.

    Call it with the secured data of a command packet that passed every security check; it
    returns the additional response data for the PoR (an InstallResult, encoded).
    """

    def __init__(self, storage: PskStorage) -> None:
        self._storage = storage

    def __call__(self, data: bytes) -> bytes:
        return build_install_result(self.execute(data))

    def execute(self, data: bytes) -> InstallResult:
        current_version, current_psk = self._storage.read_psk()
        try:
            command = parse_install_psk(data)
        except OtaDecodeError:
            return InstallResult(current_version, InstallStatus.INCORRECT_DATA)
        if command.key_version == current_version:
            same = hmac.compare_digest(command.psk, current_psk)
            status = InstallStatus.OK if same else InstallStatus.CONDITIONS_NOT_SATISFIED
            return InstallResult(current_version, status)
        if command.key_version < current_version:
            return InstallResult(current_version, InstallStatus.CONDITIONS_NOT_SATISFIED)
        try:
            self._storage.write_psk(command.key_version, command.psk)
        except OSError:
            return InstallResult(current_version, InstallStatus.MEMORY_FAILURE)
        return InstallResult(command.key_version, InstallStatus.OK)
