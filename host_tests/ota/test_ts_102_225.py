"""Secured packets (ETSI TS 102 225 / 3GPP TS 31.115): known answers, round trips, negatives."""
from __future__ import annotations

import pytest
from ztp.ota import (
    Checksum,
    CounterMode,
    OtaDecodeError,
    OtaKeys,
    OtaSecurityError,
    OtaUsageError,
    PorRequest,
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
)

from . import vectors as v

PYSIM_KEYS = OtaKeys(kic=v.PYSIM_AES_KIC, kid=v.PYSIM_AES_KID,
                     kic_index=v.PYSIM_AES_KEY_INDEX, kid_index=v.PYSIM_AES_KEY_INDEX)
# pySim's SPI_CC_POR_CIPHERED_CC
PYSIM_SPI = Spi(checksum=Checksum.CC, ciphering=True, counter_mode=CounterMode.NO_COUNTER,
                por=PorRequest.REQUIRED, por_checksum=Checksum.CC, por_ciphering=True,
                por_via_submit=False)

KEYS = OtaKeys(kic=bytes(range(16)), kid=bytes(range(16, 32)), kic_index=1, kid_index=1)
TAR = b"SAF"


def test_pysim_spi_octets() -> None:
    assert PYSIM_SPI.to_bytes() == v.PYSIM_SPI
    assert parse_spi(v.PYSIM_SPI) == PYSIM_SPI


def test_kat_pysim_aes_command_build() -> None:
    packet = seal_command(PYSIM_KEYS, spi=PYSIM_SPI, tar=v.PYSIM_TAR, counter=0,
                          data=v.PYSIM_APDU)
    assert packet == v.PYSIM_AES_COMMAND


def test_kat_pysim_aes_command_parse() -> None:
    packet = parse_command_packet(v.PYSIM_AES_COMMAND)
    assert packet.spi == PYSIM_SPI
    assert (packet.kic, packet.kid, packet.tar) == (0x22, 0x22, v.PYSIM_TAR)
    assert packet.checksum_length == 8
    assert build_command_packet(packet) == v.PYSIM_AES_COMMAND
    opened = open_command(packet, PYSIM_KEYS)
    assert (opened.counter, opened.data, opened.tar) == (0, v.PYSIM_APDU, v.PYSIM_TAR)


def test_kat_pysim_aes_response_parse() -> None:
    assert v.PYSIM_AES_RESPONSE_UD[:3] == b"\x02\x71\x00"
    packet = parse_response_packet(v.PYSIM_AES_RESPONSE_UD[3:])
    assert packet.tar == v.PYSIM_TAR and packet.checksum_length == 8
    assert build_response_packet(packet) == v.PYSIM_AES_RESPONSE_UD[3:]
    opened = open_response(packet, PYSIM_KEYS, spi=PYSIM_SPI)
    assert opened.status == ResponseStatus.POR_OK
    assert opened.counter == 0
    assert opened.data == v.PYSIM_AES_RESPONSE_DATA
    assert opened.verified


def test_kat_pysim_aes_response_build() -> None:
    built = seal_response(PYSIM_KEYS, spi=PYSIM_SPI, tar=v.PYSIM_TAR, counter=0,
                          status=ResponseStatus.POR_OK, data=v.PYSIM_AES_RESPONSE_DATA)
    assert b"\x02\x71\x00" + built == v.PYSIM_AES_RESPONSE_UD


# --- round trips and negatives -----------------------------------------------------------------

ALL_SPIS = [
    Spi(checksum=c, ciphering=ci, counter_mode=CounterMode.HIGHER, por=PorRequest.REQUIRED,
        por_checksum=pc, por_ciphering=pci)
    for c in (Checksum.NONE, Checksum.CC) for ci in (False, True)
    for pc in (Checksum.NONE, Checksum.CC) for pci in (False, True)
]


@pytest.mark.parametrize("spi", ALL_SPIS, ids=lambda s: s.to_bytes().hex())
@pytest.mark.parametrize("size", [0, 1, 2, 10, 15, 16, 17, 100])
def test_command_and_response_round_trip(spi: Spi, size: int) -> None:
    data = bytes(range(size))
    packet = seal_command(KEYS, spi=spi, tar=TAR, counter=0x0102030405, data=data)
    parsed = parse_command_packet(packet)
    assert build_command_packet(parsed) == packet
    opened = open_command(parsed, KEYS)
    assert (opened.counter, opened.data, opened.spi) == (0x0102030405, data, spi)
    response = seal_response(KEYS, spi=spi, tar=TAR, counter=7, status=0, data=data)
    got = open_response(parse_response_packet(response), KEYS, spi=spi)
    assert (got.counter, got.status, got.data) == (7, 0, data)
    assert got.verified == (spi.por_checksum == Checksum.CC)


def test_ciphering_pads_to_whole_blocks() -> None:
    packet = seal_command(KEYS, spi=Spi(), tar=TAR, counter=1, data=b"x" * 3)
    assert (len(packet) - 10) % 16 == 0
    assert packet[2] == 21  # CHL = 13 + 8


def test_wrong_checksum_is_status_01() -> None:
    spi = Spi(ciphering=False)
    packet = bytearray(seal_command(KEYS, spi=spi, tar=TAR, counter=1, data=b"hello"))
    packet[-1] ^= 0x01  # flip one data bit, the CC no longer matches
    with pytest.raises(OtaSecurityError) as info:
        open_command(parse_command_packet(bytes(packet)), KEYS)
    assert info.value.status == ResponseStatus.RC_CC_DS_FAILED


def test_ciphered_tampering_is_status_01() -> None:
    packet = bytearray(seal_command(KEYS, spi=Spi(), tar=TAR, counter=1, data=b"hello"))
    packet[12] ^= 0x80
    with pytest.raises(OtaSecurityError) as info:
        open_command(parse_command_packet(bytes(packet)), KEYS)
    assert info.value.status == ResponseStatus.RC_CC_DS_FAILED


def test_wrong_keys_same_index_is_status_01() -> None:
    other = OtaKeys(kic=bytes(16), kid=bytes(16), kic_index=1, kid_index=1)
    packet = seal_command(KEYS, spi=Spi(), tar=TAR, counter=1, data=b"hello")
    with pytest.raises(OtaSecurityError) as info:
        open_command(parse_command_packet(packet), other)
    assert info.value.status == ResponseStatus.RC_CC_DS_FAILED


def test_other_key_index_is_ciphering_error() -> None:
    other = OtaKeys(kic=KEYS.kic, kid=KEYS.kid, kic_index=3, kid_index=3)
    packet = seal_command(other, spi=Spi(), tar=TAR, counter=1, data=b"hello")
    with pytest.raises(OtaSecurityError) as info:
        open_command(parse_command_packet(packet), KEYS)
    assert info.value.status == ResponseStatus.CIPHERING_ERROR


def test_response_cc_mismatch() -> None:
    response = bytearray(seal_response(KEYS, spi=Spi(por_ciphering=False), tar=TAR, counter=1,
                                       status=0, data=b"ok"))
    response[-1] ^= 1
    with pytest.raises(OtaSecurityError, match="checksum mismatch"):
        open_response(parse_response_packet(bytes(response)), KEYS, spi=Spi(por_ciphering=False))


def test_unsecured_error_por_is_unverified_and_unsecured_ok_refused() -> None:
    error = seal_unsecured_response(tar=TAR, status=ResponseStatus.TAR_UNKNOWN)
    got = open_response(parse_response_packet(error), KEYS, spi=Spi())
    assert (got.status, got.verified) == (ResponseStatus.TAR_UNKNOWN, False)
    fake_ok = seal_unsecured_response(tar=TAR, status=ResponseStatus.POR_OK)
    with pytest.raises(OtaSecurityError, match="unsecured PoR"):
        open_response(parse_response_packet(fake_ok), KEYS, spi=Spi())


@pytest.mark.parametrize(("data", "message"), [
    (b"", "at least 10"),
    (bytes.fromhex("0009") + bytes(9), "CHL 0 below"),
    (bytes.fromhex("0010") + bytes(15), "CPL says 16"),
    (bytes.fromhex("0014 0d e619 2222 b00011") + bytes(12), "reserved bits"),
    (bytes.fromhex("0014 0d 0613 2222 b00011") + bytes(12), "PoR b2b1 = 11"),
    (bytes.fromhex("0014 0d 0619 2222 b00011") + bytes(12), "RC/CC/DS length 0"),
    (bytes.fromhex("0019 15 0619 2222 b00011") + bytes(17), "ciphered part must be"),
    (bytes.fromhex("000c 0d 0000 2222 b00011") + bytes(4), "at least 6 bytes"),
])
def test_command_packet_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(OtaDecodeError, match=message):
        parse_command_packet(data)


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x01", "at least 6"),
    (bytes.fromhex("0005 0a b00011"), "RPL says 5"),
    (bytes.fromhex("0004 09 b00011"), "RHL 9 below"),
    (bytes.fromhex("000a 0a b00011") + bytes(6), "at least 7"),
])
def test_response_packet_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(OtaDecodeError, match=message):
        parse_response_packet(data)


def test_usage_errors() -> None:
    with pytest.raises(OtaUsageError, match="16, 24 or 32"):
        OtaKeys(kic=bytes(15), kid=bytes(16))
    with pytest.raises(OtaUsageError, match="CNTR"):
        seal_command(KEYS, spi=Spi(), tar=TAR, counter=1 << 40, data=b"")
    with pytest.raises(OtaUsageError, match="RC is not supported"):
        seal_command(KEYS, spi=Spi(checksum=Checksum.RC), tar=TAR, counter=1, data=b"")
    with pytest.raises(OtaUsageError, match="TAR"):
        seal_command(KEYS, spi=Spi(), tar=b"ab", counter=1, data=b"")


def test_keys_not_in_repr() -> None:
    assert KEYS.kic.hex() not in repr(KEYS) and "kic=" not in repr(KEYS)
