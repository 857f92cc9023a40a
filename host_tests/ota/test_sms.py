"""SMS-PP transport (TS 23.040, TS 31.115 UDH, ENVELOPE D1): published TPDU, round trips, errors."""
from __future__ import annotations

import pytest
from ztp.ota import (
    OtaDecodeError,
    OtaUsageError,
    SmsAddress,
    SmsDeliver,
    SmsSubmit,
    build_command_user_data,
    build_sms_deliver,
    build_sms_pp_download,
    build_sms_submit,
    parse_command_user_data,
    parse_response_user_data,
    parse_sms_deliver,
    parse_sms_pp_download,
    parse_sms_submit,
)

from . import vectors as v


def test_kat_pysim_sms_deliver_build() -> None:
    sms = SmsDeliver(originating_address=SmsAddress(v.PYSIM_ORIGINATING_ADDRESS, 0x81),
                     user_data=build_command_user_data(v.PYSIM_AES_COMMAND),
                     service_centre_time_stamp=v.PYSIM_SCTS)
    assert build_sms_deliver(sms) == v.PYSIM_AES_TPDU_FIXED


def test_kat_pysim_sms_deliver_parse() -> None:
    sms = parse_sms_deliver(v.PYSIM_AES_TPDU_FIXED)
    assert sms.originating_address == SmsAddress("12345678", 0x81)
    assert (sms.protocol_identifier, sms.data_coding_scheme) == (0x7F, 0xF6)
    assert sms.service_centre_time_stamp == v.PYSIM_SCTS and sms.tp_udhi
    assert parse_command_user_data(sms.user_data) == v.PYSIM_AES_COMMAND


def test_published_tpdu_with_wrong_udl_is_refused() -> None:
    with pytest.raises(OtaDecodeError, match="TP-UDL says 3 octets, got 45"):
        parse_sms_deliver(v.PYSIM_AES_TPDU)


def test_envelope_round_trip() -> None:
    centre = SmsAddress("447700900123", 0x91)
    envelope = build_sms_pp_download(v.PYSIM_AES_TPDU_FIXED, centre)
    assert envelope[0] == 0xD1
    assert envelope[2:6] == bytes.fromhex("82028381")  # device identities: network -> UICC
    tpdu, address = parse_sms_pp_download(envelope)
    assert tpdu == v.PYSIM_AES_TPDU_FIXED
    assert address == centre.encode_address_value() == bytes.fromhex("91447700091032")


def test_envelope_errors() -> None:
    with pytest.raises(OtaDecodeError):
        parse_sms_pp_download(b"\xd1\x05\x82\x02\x83\x81")
    with pytest.raises(OtaUsageError):
        build_sms_pp_download(bytes(250))


def test_sms_submit_round_trip_odd_address() -> None:
    sms = SmsSubmit(destination_address=SmsAddress("123", 0x91), user_data=b"\x02\x71\x00abc",
                    message_reference=9, tp_vpf=2, validity_period=b"\xa7")
    tpdu = build_sms_submit(sms)
    assert tpdu[:5] == bytes.fromhex("5109039121")
    assert tpdu[5] == 0xF3  # digit 3, filler F
    assert parse_sms_submit(tpdu) == sms


@pytest.mark.parametrize(("user_data", "message"), [
    (b"\x02\x71\x00", "only the command packet element"),
    (b"\x05\x00\x03\x01\x02\x01", "concatenated"),
    (b"\x05\x70\x00\x71\x01\x00", "only the command packet element"),
    (b"\x03\x70\x02\x00\x00", "overruns"),
    (b"\x09\x70\x00", "beyond"),
])
def test_command_user_data_errors(user_data: bytes, message: str) -> None:
    with pytest.raises(OtaDecodeError, match=message):
        parse_command_user_data(user_data)


def test_response_user_data_needs_exact_udh() -> None:
    with pytest.raises(OtaDecodeError, match="expected 027100"):
        parse_response_user_data(b"\x02\x70\x00\x00")


def test_one_sms_limit() -> None:
    with pytest.raises(OtaUsageError, match="more than one SMS"):
        build_command_user_data(bytes(138))


@pytest.mark.parametrize(("tpdu", "message"), [
    (b"", "empty"),
    (b"\x01", "not SMS-DELIVER"),
    (bytes.fromhex("4015"), "truncated address"),
    (bytes.fromhex("400381214365"), "odd digit count"),
    (bytes.fromhex("4002d02143"), "alphanumeric"),
    (bytes.fromhex("40028121") + bytes.fromhex("7f00") + bytes(7) + b"\x00", "not 8-bit"),
])
def test_sms_deliver_errors(tpdu: bytes, message: str) -> None:
    with pytest.raises(OtaDecodeError, match=message):
        parse_sms_deliver(tpdu)
