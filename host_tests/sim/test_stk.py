"""ETSI TS 102 223 codec: wire vectors both ways, strict parsing, round trips."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp import stk
from ztp.stk import (
    Bearer,
    BearerType,
    ChannelStatus,
    CloseChannel,
    CommandDetails,
    Event,
    EventDownload,
    GeneralResult,
    GetChannelStatus,
    OpenChannel,
    ReceiveData,
    Result,
    SendData,
    SmsPpDownload,
    StkDecodeError,
    TerminalResponse,
    TimerAction,
    TimerExpiration,
    TimerManagement,
    TransportProtocol,
)

IP = ipaddress.IPv4Address

# (object, wire hex): one table drives both the builder and the parser tests.
# Layouts from TS 102 223 §6.6.27-31, §6.6.21 (command details 81 03, device ids 82 02).
PROACTIVE = [
    (
        OpenChannel(1, 1400, TransportProtocol.TCP_CLIENT_REMOTE, 8443, IP("192.0.2.7")),
        "D0 1C 8103014001 82028182 B50103 B9020578 3C030220FB 3E0521C0000207",
    ),
    (
        OpenChannel(
            2,
            512,
            TransportProtocol.UDP_CLIENT_REMOTE,
            53,
            None,
            bearer=Bearer(BearerType.GPRS, bytes.fromhex("030403041F02")),
            dns_request=True,
            network_access_name=b"\x08internet",
        ),
        "D0 26 8103024009 82028182 B507 02030403041F02 B9020200 470908696E7465726E6574 3C03010035",
    ),
    (CloseChannel(3, 1), "D0 09 8103034100 82028121"),
    (ReceiveData(4, 2, 200), "D0 0C 8103044200 82028122 B701C8"),
    (SendData(5, 1, b"\x16\x03\x01"), "D0 0E 8103054301 82028121 B603160301"),
    (SendData(6, 7, b"", immediate=False), "D0 0B 8103064300 82028127 B600"),
    (GetChannelStatus(7), "D0 09 8103074400 82028182"),
    (
        TimerManagement(8, TimerAction.START, 1, 3723),
        "D0 11 8103082700 82028182 A40101 A503102030",
    ),
    (TimerManagement(9, TimerAction.DEACTIVATE, 8), "D0 0C 8103092701 82028182 A40108"),
]


def _hex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


@pytest.mark.parametrize(("cmd", "wire"), PROACTIVE)
def test_proactive_command_vectors(cmd, wire):
    assert stk.build_proactive_command(cmd) == _hex(wire)
    assert stk.parse_proactive_command(_hex(wire)) == cmd


def test_open_channel_cr_bit_is_ignored_on_parse():
    # Bearer description written without CR, buffer size with: both understood.
    wire = _hex("D0 1C 8103014001 82028182 350103 B9020578 3C030220FB 3E0521C0000207")
    assert stk.parse_proactive_command(wire) == PROACTIVE[0][0]


def test_long_send_data_uses_two_byte_length():
    cmd = SendData(1, 1, bytes(range(200)))
    wire = stk.build_proactive_command(cmd)
    assert wire[:3] == bytes([0xD0, 0x81, len(wire) - 3])
    assert stk.parse_proactive_command(wire) == cmd
    with pytest.raises(ValueError):
        SendData(1, 1, bytes(244))


BAD_PROACTIVE = [
    ("", "too short"),
    ("D1 03 810301", "expected tag D0"),
    ("D0 09 8103034100 82028121 00", "announces"),
    ("D0 0A 8103034100 82028121", "announces"),
    ("D0 8109 8103034100 82028121", "non-minimal"),
    ("D0 82000A 8103034100 82028121", "unsupported length"),
    ("D0 05 8103034100", "must start"),
    ("D0 09 8103004100 82028121", "command number"),
    ("D0 09 8103034500 82028121", "unsupported type"),
    ("D0 09 8103034100 82028182", "not a channel"),
    ("D0 09 8103034100 82028221", "device identities"),
    ("D0 0C 8103034100 82028121 C10100", "unknown object 41 with CR"),
    ("D0 09 8103044200 82028122", "CHANNEL_DATA_LENGTH missing"),
    ("D0 0F 8103044200 82028122 B701C8 B701C8", "duplicated or out of order"),
    ("D0 11 8103082700 82028182 A40101 A5031002A3", "bad BCD"),
    ("D0 11 8103082700 82028182 A40101 A503420203", "out of range"),
    ("D0 0C 8103082700 82028182 A40101", "timer value present iff START"),
    ("D0 0C 8103082703 82028182 A40101", "bad qualifier"),
    ("D0 0C 8103082701 82028182 A40109", "not in 1..8"),
    ("D0 15 8103014001 82028182 350103 39020578 3C03090035", "transport protocol"),
    ("D0 15 8103014001 82028182 350103 39020000 3C03010035", "buffer size 0"),
    ("D0 18 8103014001 82028182 350103 39020578 3C03020035 3E0122", "IPv4"),
    ("D0 15 8103014011 82028182 350103 39020578 3C03010035", "RFU qualifier"),
    # Transport level before buffer size: out of order.
    ("D0 15 8103014001 82028182 350103 3C03010035 39020578", "39 duplicated or out of order"),
    ("D0 0E 8103054303 82028121 B603160301", "RFU qualifier"),
    ("D0 0A 7F03054303 82028121 00", "three-byte"),
]


@pytest.mark.parametrize(("wire", "msg"), BAD_PROACTIVE)
def test_bad_proactive_commands_name_the_error(wire, msg):
    with pytest.raises(StkDecodeError, match=msg):
        stk.parse_proactive_command(_hex(wire))


def test_unknown_object_without_cr_is_skipped():
    wire = _hex("D0 0C 8103034100 82028121 410100")
    assert stk.parse_proactive_command(wire) == CloseChannel(3, 1)


def test_peek_command_details_of_unsupported_command():
    wire = _hex("D0 09 8103034500 82028182")
    assert stk.peek_command_details(wire) == CommandDetails(3, 0x45, 0)
    assert stk.peek_command_details(b"\xd0\x01") is None


OK = Result(GeneralResult.PERFORMED_SUCCESSFULLY)

TERMINAL_RESPONSES = [
    (
        TerminalResponse(
            PROACTIVE[0][0].details,
            OK,
            channel_status=(ChannelStatus(1, True),),
            bearer=Bearer(),
            buffer_size=1400,
        ),
        "8103014001 82028281 830100 B8028100 B50103 B9020578",
    ),
    (
        TerminalResponse(
            CommandDetails(2, 0x40, 0x09),
            Result(GeneralResult.PERFORMED_WITH_MODIFICATION),
            channel_status=(ChannelStatus(2, False),),
            bearer=Bearer(),
            buffer_size=256,
            dns_servers=(IP("10.0.0.53"), ipaddress.IPv6Address("2001:db8::35")),
        ),
        "8103024009 82028281 830107 B8020200 B50103 B9020100 C005210A000035"
        " C0115720010DB8000000000000000000000035",
    ),
    (
        TerminalResponse(CommandDetails(5, 0x43, 1), OK, channel_data_length=0xFF),
        "8103054301 82028281 830100 B701FF",
    ),
    (
        TerminalResponse(
            CommandDetails(4, 0x42, 0), OK, channel_data=b"\x17\x03\x03", channel_data_length=9
        ),
        "8103044200 82028281 830100 B603170303 B70109",
    ),
    (
        TerminalResponse(CommandDetails(3, 0x41, 0), Result(GeneralResult.BIP_ERROR, b"\x03")),
        "8103034100 82028281 83023A03",
    ),
    (
        TerminalResponse(
            CommandDetails(7, 0x44, 0),
            OK,
            channel_status=(ChannelStatus(1, True), ChannelStatus(2, False, 5)),
        ),
        "8103074400 82028281 830100 B8028100 B8020205",
    ),
    (
        TerminalResponse(CommandDetails(9, 0x27, 1), OK, timer_id=8, timer_value_s=59),
        "8103092701 82028281 830100 A40108 A503000095",
    ),
]


@pytest.mark.parametrize(("tr", "wire"), TERMINAL_RESPONSES)
def test_terminal_response_vectors(tr, wire):
    assert stk.build_terminal_response(tr) == _hex(wire)
    assert stk.parse_terminal_response(_hex(wire)) == tr


def test_terminal_response_for_command_echoes_details():
    cmd = ReceiveData(0x42, 1, 10)
    tr = TerminalResponse.for_command(cmd, OK, channel_data=b"x", channel_data_length=0)
    assert tr.details == CommandDetails(0x42, 0x42, 0)


BAD_TR = [
    ("", "bad length"),
    ("8103014001 82028182 830100", "device identities"),
    ("8103014001 82028281", "must start"),
    ("8103014001 82028281 830100 B50103 B8028100", "duplicated or out of order"),
    ("8103014001 82028281 B8028100", "RESULT missing"),
    ("8103014001 82028281 8300", "result: bad length"),
    ("8103014001 82028281 830100 B803810000", "channel status: expected 2"),
    ("8103014001 82028281 830100 B8020900", "RFU bits"),
    ("8103014001 82028281 830100 C0022100", "DNS server address"),
    ("8103014001 82028281 830100 B70201FF", "channel data length: expected 1"),
]


@pytest.mark.parametrize(("wire", "msg"), BAD_TR)
def test_bad_terminal_responses(wire, msg):
    with pytest.raises(StkDecodeError, match=msg):
        stk.parse_terminal_response(_hex(wire))


ENVELOPES = [
    (
        EventDownload(Event.DATA_AVAILABLE, ChannelStatus(1, True), 0xFF),
        "D6 0E 990109 82028281 B8028100 B701FF",
    ),
    (
        EventDownload(Event.CHANNEL_STATUS, ChannelStatus(1, False, 5)),
        "D6 0B 99010A 82028281 B8020105",
    ),
    (TimerExpiration(2, 30), "D7 0C 82028281 A40102 A503000003"),
    (
        SmsPpDownload(bytes.fromhex("4003A1214300"), bytes.fromhex("91214365")),
        "D1 12 82028381 8605 91214365 8B06 4003A1214300".replace("8605 ", "8604 "),
    ),
    (SmsPpDownload(b"\x00"), "D1 07 82028381 8B0100"),
]


@pytest.mark.parametrize(("env", "wire"), ENVELOPES)
def test_envelope_vectors(env, wire):
    assert stk.build_envelope(env) == _hex(wire)
    assert stk.parse_envelope(_hex(wire)) == env


BAD_ENV = [
    ("D6 0B 990109 82028281 B8028100", "goes with data available only"),
    ("D6 0E 99010A 82028281 B8028100 B70101", "goes with data available only"),
    ("D6 0B 990105 82028281 B8028100", "unsupported event"),
    ("D6 0C 99020A09 82028281 B8028100", "exactly one event"),
    ("D6 0B 99010A 82028182 B8028100", "device identities"),
    ("D7 0C 82028281 A40109 A503000003", "not in 1..8"),
    ("D7 07 82028281 A40102", "TIMER_VALUE missing"),
    ("D1 06 82028381 8B00", "empty SMS TPDU"),
    ("D1 07 82028281 8B0100", "device identities"),
    ("D3 00", "unsupported tag"),
]


@pytest.mark.parametrize(("wire", "msg"), BAD_ENV)
def test_bad_envelopes(wire, msg):
    with pytest.raises(StkDecodeError, match=msg):
        stk.parse_envelope(_hex(wire))


def test_timer_value_bcd():
    assert stk.encode_timer_value(0) == b"\x00\x00\x00"
    assert stk.encode_timer_value(86399) == bytes.fromhex("329595")
    assert stk.decode_timer_value(bytes.fromhex("329595")) == 86399
    with pytest.raises(ValueError):
        stk.encode_timer_value(86400)


def test_terminal_profile_bits():
    profile = stk.build_terminal_profile(stk.BIP_FEATURES + (stk.Feature.TIMER_MANAGEMENT,), 7)
    assert len(profile) == 17
    assert profile[11] == 0x1F  # byte 12: OPEN/CLOSE/RECEIVE/SEND/GET CHANNEL STATUS
    assert profile[16] == 0x03  # byte 17: TCP + UDP client remote
    assert profile[12] >> 5 == 7
    features, channels = stk.parse_terminal_profile(profile)
    assert stk.Feature.OPEN_CHANNEL in features and channels == 7
    assert stk.profile_supports(profile, stk.Feature.TIMER_MANAGEMENT)
    assert not stk.profile_supports(profile, stk.Feature.TIMER_EXPIRATION)
    assert not stk.profile_supports(b"\xff" * 3, stk.Feature.OPEN_CHANNEL)


def test_apdus():
    assert stk.build_fetch_apdu(0x1A) == bytes.fromhex("801200001A")
    assert stk.build_terminal_profile_apdu(b"\x01\x02") == bytes.fromhex("80100000020102")
    assert stk.build_terminal_response_apdu(b"\xaa") == bytes.fromhex("8014000001AA")
    assert stk.build_envelope_apdu(b"\xd6\x00") == bytes.fromhex("80C2000002D600")
    with pytest.raises(ValueError):
        stk.build_fetch_apdu(0)
    with pytest.raises(ValueError):
        stk.build_envelope_apdu(b"")


def test_constructors_refuse_invalid_values():
    with pytest.raises(ValueError):
        CloseChannel(0, 1)
    with pytest.raises(ValueError):
        CloseChannel(1, 8)
    with pytest.raises(ValueError):
        OpenChannel(1, 0, TransportProtocol.TCP_CLIENT_REMOTE, 1)
    with pytest.raises(ValueError):
        TimerManagement(1, TimerAction.START, 1)
    with pytest.raises(ValueError):
        EventDownload(Event.DATA_AVAILABLE, ChannelStatus(1, True))


# ---------------------------------------------------------------- properties

_ips = st.one_of(
    st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1)),
    st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1)),
)
_num = st.integers(1, 0xFE)
_chan = st.integers(1, 7)
_commands = st.one_of(
    st.builds(
        OpenChannel,
        _num,
        st.integers(1, 0xFFFF),
        st.sampled_from(list(TransportProtocol)),
        st.integers(0, 0xFFFF),
        st.none() | _ips,
        st.builds(Bearer, st.integers(0, 255), st.binary(max_size=8)),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.booleans(),
        st.none() | st.binary(max_size=30),
        st.none() | st.binary(max_size=30),
    ),
    st.builds(CloseChannel, _num, _chan),
    st.builds(ReceiveData, _num, _chan, st.integers(0, 255)),
    st.builds(SendData, _num, _chan, st.binary(max_size=243), st.booleans()),
    st.builds(GetChannelStatus, _num),
    st.builds(
        TimerManagement,
        _num,
        st.just(TimerAction.START),
        st.integers(1, 8),
        st.integers(0, 86399),
    ),
)


@settings(max_examples=150, deadline=None)
@given(_commands)
def test_proactive_round_trip(cmd):
    assert stk.parse_proactive_command(stk.build_proactive_command(cmd)) == cmd


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_parsers_raise_only_decode_error(data):
    for parse in (stk.parse_proactive_command, stk.parse_terminal_response, stk.parse_envelope):
        try:
            parse(data)
        except StkDecodeError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(PROACTIVE + ENVELOPES), st.integers(0, 40), st.integers(0, 255))
def test_single_byte_corruption_parses_or_raises_decode_error(case, pos, value):
    obj, wire = case
    data = bytearray(_hex(wire))
    data[pos % len(data)] = value
    parse = stk.parse_envelope if data[0] != 0xD0 else stk.parse_proactive_command
    try:
        parse(bytes(data))
    except StkDecodeError:
        pass
