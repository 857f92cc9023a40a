"""Secured packets (ETSI TS 102 225 / 3GPP TS 31.115): known answers, round trips, negatives."""
from __future__ import annotations

from ztp.ota import (
    Checksum,
    CounterMode,
    OtaKeys,
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
