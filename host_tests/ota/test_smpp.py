"""SMPP v3.4 codec (ztp.ota.smpp): wire vectors written out by hand from the spec's tables,
split input, trailing data, and the errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ztp.ota import OtaDecodeError, OtaUsageError, smpp

# SMPP v3.4 §4.1.5 bind_transceiver: system_id "ota", password "secret", system_type "OTA",
# interface_version 0x34, addr_ton 0, addr_npi 0, address_range "".
BIND_BODY = b"ota\x00secret\x00OTA\x00\x34\x00\x00\x00"
BIND_WIRE = bytes.fromhex("00000023" "00000009" "00000000" "00000001") + BIND_BODY

# §4.4.1 submit_sm: service_type "", 1/1 "447700900123", 1/1 "447700900555", esm_class 0x40,
# protocol_id 0x7F, priority 0, schedule "", validity "", registered_delivery 0, replace 0,
# data_coding 0xF6, sm_default_msg_id 0, sm_length 5, short_message 02 70 00 AA BB.
SUBMIT_BODY = (b"\x00" b"\x01\x01" b"447700900123\x00" b"\x01\x01" b"447700900555\x00"
               b"\x40\x7f\x00" b"\x00" b"\x00" b"\x00\x00\xf6\x00" b"\x05" b"\x02\x70\x00\xaa\xbb")
SUBMIT_SM = smpp.ShortMessage(
    source_addr="447700900123", destination_addr="447700900555",
    short_message=bytes.fromhex("027000aabb"), esm_class=0x40, protocol_id=0x7F,
    data_coding=0xF6, source_addr_ton=1, source_addr_npi=1, dest_addr_ton=1, dest_addr_npi=1)

TABLE = [
    (smpp.Pdu(smpp.BIND_TRANSCEIVER, 0, 1, BIND_BODY), BIND_WIRE),
    (smpp.Pdu(smpp.ENQUIRE_LINK, 0, 7), bytes.fromhex("00000010000000150000000000000007")),
    (smpp.Pdu(smpp.GENERIC_NACK, 3, 9), bytes.fromhex("00000010800000000000000300000009")),
    (smpp.Pdu(smpp.UNBIND_RESP, 0, 0x7FFFFFFF),
     bytes.fromhex("0000001080000006000000007fffffff")),
    (smpp.Pdu(smpp.SUBMIT_SM, 0, 2, SUBMIT_BODY),
     (16 + len(SUBMIT_BODY)).to_bytes(4, "big") + bytes.fromhex("000000040000000000000002")
     + SUBMIT_BODY),
]


@pytest.mark.parametrize(("pdu", "wire"), TABLE)
def test_pdu_table_both_ways(pdu, wire):
    assert smpp.build_pdu(pdu) == wire
    assert smpp.parse_pdu(wire) == pdu


def test_bind_and_submit_bodies():
    bind = smpp.BindTransceiver("ota", "secret", "OTA")
    assert smpp.build_bind(bind) == BIND_BODY and smpp.parse_bind(BIND_BODY) == bind
    assert "secret" not in repr(bind)
    assert smpp.build_sm(SUBMIT_SM) == SUBMIT_BODY and smpp.parse_sm(SUBMIT_BODY) == SUBMIT_SM


def test_message_payload_tlv():
    sm = smpp.ShortMessage("1", "2", esm_class=0x40, message_payload=b"\x02\x71\x00xy")
    body = smpp.build_sm(sm)
    assert body.endswith(bytes.fromhex("04240005") + b"\x02\x71\x00xy")
    assert smpp.parse_sm(body).user_data == b"\x02\x71\x00xy"
    # an unknown TLV is skipped
    assert smpp.parse_sm(body + bytes.fromhex("1e010000")).user_data == b"\x02\x71\x00xy"


def _feed(chunks):
    buf = smpp.PduBuffer()
    out = []
    for chunk in chunks:
        buf.receive_data(chunk)
        while (pdu := buf.next_pdu()) is not None:
            out.append(pdu)
    return out, buf


def test_buffer_all_at_once_byte_by_byte_and_trailing():
    stream = b"".join(w for _, w in TABLE)
    pdus = [p for p, _ in TABLE]
    assert _feed([stream])[0] == pdus
    assert _feed([bytes([b]) for b in stream])[0] == pdus
    got, buf = _feed([stream + TABLE[1][1][:5]])
    assert got == pdus and buf.next_pdu() is None  # the partial one waits


@given(st.lists(st.integers(0, 200), max_size=10))
def test_buffer_random_splits(cuts):
    stream = b"".join(w for _, w in TABLE)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert _feed(chunks)[0] == [p for p, _ in TABLE]


@pytest.mark.parametrize("length", [0, 15, smpp.MAX_PDU_LEN + 1])
def test_bad_command_length(length):
    buf = smpp.PduBuffer()
    buf.receive_data(length.to_bytes(4, "big") + bytes(12))
    with pytest.raises(OtaDecodeError, match="command_length"):
        buf.next_pdu()


@pytest.mark.parametrize("cut", range(len(SUBMIT_BODY) - 1))
def test_truncated_submit_body(cut):
    with pytest.raises(OtaDecodeError):
        smpp.parse_sm(SUBMIT_BODY[:cut])


@given(st.binary(max_size=300))
def test_parsers_raise_only_decode_errors(data):
    for parse in (smpp.parse_sm, smpp.parse_bind, smpp.parse_pdu):
        try:
            parse(data)
        except OtaDecodeError:
            pass


def test_usage_errors():
    with pytest.raises(OtaUsageError, match="short_message"):
        smpp.ShortMessage("1", "2", bytes(255))
    with pytest.raises(OtaUsageError, match="password"):
        smpp.build_bind(smpp.BindTransceiver("ota", "123456789"))
    assert smpp.smpp_status_name(0x0E) == "0x0000000E (ESME_RINVPASWD)"
