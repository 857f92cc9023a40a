"""ztp.iccid: Luhn, ICCID validation, EF_ICCID nibble-swapped BCD both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ztp.iccid import (
    IccidError,
    build_ef_iccid,
    iccid_from_hex,
    iccid_to_hex,
    luhn_check_digit,
    luhn_valid,
    normalize_iccid,
    parse_ef_iccid,
)

# SAFE2-PROTOCOL.md, "TLS profile of the SIM": ICCID <-> raw EF_ICCID bytes
ICCID_19 = "8944502509186389635"
EF_19 = bytes.fromhex("984405529081369836F5")


def test_vector_both_ways() -> None:
    assert build_ef_iccid(ICCID_19) == EF_19
    assert parse_ef_iccid(EF_19) == ICCID_19
    assert iccid_to_hex(ICCID_19) == "984405529081369836f5"
    assert iccid_from_hex("984405529081369836F5") == ICCID_19


def test_luhn_known_values() -> None:
    assert luhn_check_digit("7992739871") == "3"  # classic ISO 7812 example
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398714")
    assert not luhn_valid("")
    assert not luhn_valid("12a")


def test_lengths_18_and_20() -> None:
    i18 = "89445025091863896" + luhn_check_digit("89445025091863896")
    i20 = "8944502509186389635" + luhn_check_digit("8944502509186389635")
    assert build_ef_iccid(i18)[-1] == 0xFF
    assert len(build_ef_iccid(i20)) == 10 and 0xF0 & build_ef_iccid(i20)[-1] != 0xF0
    assert parse_ef_iccid(build_ef_iccid(i18)) == i18
    assert parse_ef_iccid(build_ef_iccid(i20)) == i20


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("894450250918638963", "Luhn"),  # 18 digits, wrong check digit
        ("8944502509186389634", "expected check digit 5, got 4"),
        ("89445025091863896", "18-20 digits, got 17"),
        ("894450250918638963512", "got 21"),
        ("89445025091863896x5", "decimal digits"),
        ("８９４４５０２５０９１８６３８９６３５", "decimal digits"),  # fullwidth digits
    ],
)
def test_normalize_refuses(value: str, match: str) -> None:
    with pytest.raises(IccidError, match=match):
        normalize_iccid(value)


def test_force_skips_luhn_only() -> None:
    assert normalize_iccid("8944502509186389634", check_luhn=False) == "8944502509186389634"
    with pytest.raises(IccidError):
        normalize_iccid("894450250918638963x", check_luhn=False)


def test_grouped_input_accepted() -> None:
    assert normalize_iccid("8944 5025 0918-6389 635") == ICCID_19


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (EF_19[:9], "10 bytes, got 9"),
        (EF_19 + b"\x00", "10 bytes, got 11"),
        (bytes.fromhex("984405529081369836A5"), "non-BCD"),
        (bytes.fromhex("98440552908136F83665"), "digit after 'F'"),
        (bytes.fromhex("9844055290813698FFFF"), "16 digits"),
    ],
)
def test_parse_refuses(raw: bytes, match: str) -> None:
    with pytest.raises(IccidError, match=match):
        parse_ef_iccid(raw)


def test_from_hex_refuses_non_hex() -> None:
    with pytest.raises(IccidError, match="not hex"):
        iccid_from_hex("zz4405529081369836f5")
    with pytest.raises(IccidError, match="20 hex"):
        iccid_from_hex("9844")


@given(st.text(alphabet="0123456789", min_size=17, max_size=19))
def test_roundtrip(payload: str) -> None:
    iccid = payload + luhn_check_digit(payload)
    raw = build_ef_iccid(iccid)
    assert len(raw) == 10
    assert parse_ef_iccid(raw, check_luhn=True) == iccid
    assert iccid_from_hex(raw.hex()) == iccid


@given(st.binary(min_size=0, max_size=12))
def test_parse_any_bytes_parses_or_iccid_error(raw: bytes) -> None:
    try:
        iccid = parse_ef_iccid(raw)
    except IccidError:
        return
    assert build_ef_iccid(iccid, check_luhn=False) == raw
