"""Property tests: every parser either parses or raises OtaDecodeError; round trips hold; the
rotation table never retires the old key before CONFIRMED."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp.ota import (
    TRANSITIONS,
    Checksum,
    CounterMode,
    OtaDecodeError,
    OtaKeys,
    OtaProtocolError,
    OtaSecurityDomain,
    PorRequest,
    Rotation,
    RotationError,
    RotationEvent,
    RotationState,
    Spi,
    TarEntry,
    build_command_packet,
    build_response_packet,
    check_por,
    open_command,
    parse_command_packet,
    parse_command_user_data,
    parse_install_psk,
    parse_install_result,
    parse_response_packet,
    parse_sms_deliver,
    parse_sms_pp_download,
    parse_sms_submit,
    parse_spi,
    seal_command,
)

FUZZ = settings(max_examples=150, deadline=None)
KEYS = OtaKeys(kic=bytes(range(16)), kid=bytes(range(16, 32)))

PARSERS = [parse_spi, parse_command_packet, parse_response_packet, parse_sms_deliver,
           parse_sms_submit, parse_sms_pp_download, parse_command_user_data, parse_install_psk,
           parse_install_result]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(data=st.binary(max_size=300))
def test_parsers_raise_only_decode_errors(parser, data: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        parser(data)
    except OtaDecodeError:
        pass


@FUZZ
@given(data=st.binary(max_size=200))
def test_card_and_por_check_raise_only_protocol_errors(data: bytes) -> None:
    card = OtaSecurityDomain([TarEntry(tar=b"SF2", keys=KEYS, application=lambda d: b"")])
    for candidate in (data, b"\x00" + bytes((len(data) + 8,)) + b"\x15\x16\x19\x12\x12SF2"
                      + data[:0] + bytes(6) + data):
        try:
            card.process_command_packet(candidate)
        except OtaDecodeError:
            pass
    try:
        check_por(KEYS, b"\x02\x71\x00" + data)
    except OtaProtocolError:
        pass


spis = st.builds(Spi, checksum=st.sampled_from([Checksum.NONE, Checksum.CC]),
                 ciphering=st.booleans(), counter_mode=st.sampled_from(list(CounterMode)),
                 por=st.sampled_from(list(PorRequest)), por_checksum=st.sampled_from(
                     list(Checksum)), por_ciphering=st.booleans(), por_via_submit=st.booleans())


@FUZZ
@given(spi=spis, counter=st.integers(0, (1 << 40) - 1), data=st.binary(max_size=120))
def test_seal_parse_open_round_trip(spi: Spi, counter: int, data: bytes) -> None:
    assert parse_spi(spi.to_bytes()) == spi
    packet = seal_command(KEYS, spi=spi, tar=b"SF2", counter=counter, data=data)
    parsed = parse_command_packet(packet)
    assert build_command_packet(parsed) == packet
    opened = open_command(parsed, KEYS)
    assert (opened.counter, opened.data) == (counter, data)


@FUZZ
@given(data=st.binary(min_size=6, max_size=100))
def test_response_parse_build_round_trip(data: bytes) -> None:
    try:
        packet = parse_response_packet(data)
    except OtaDecodeError:
        return
    assert build_response_packet(packet) == data


@FUZZ
@given(events=st.lists(st.sampled_from(list(RotationEvent)), max_size=30))
def test_rotation_table_never_retires_early(events: list[RotationEvent]) -> None:
    state = RotationState.PENDING
    confirmed = False
    for event in events:
        new = TRANSITIONS.get((state, event))
        if new is None:
            continue
        if new == RotationState.RETIRED and state != RotationState.RETIRED:
            assert confirmed and state == RotationState.CONFIRMED
        if new == RotationState.CONFIRMED:
            confirmed = True
            assert event == RotationEvent.NEW_KEY_HANDSHAKE or state == RotationState.CONFIRMED
        state = new


def test_every_missing_transition_is_refused() -> None:
    for state in RotationState:
        for event in (RotationEvent.RETIRE_OLD_KEY,):
            rotation = Rotation(sim="x", old_key_version=1, new_key_version=2, created_at_s=0,
                                state=state)
            if (state, event) in TRANSITIONS:
                rotation.retire_old_key(1)
                assert state == RotationState.CONFIRMED
            else:
                with pytest.raises(RotationError):
                    rotation.retire_old_key(1)
                assert rotation.accepted_key_versions() == ((2,) if state ==
                                                            RotationState.RETIRED else (1, 2))
