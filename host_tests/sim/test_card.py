"""ISO/IEC 7816-4 / TS 102 221 behaviour of the virtual card, APDU by APDU, bad ones included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp import stk
from ztp.sim import ATR, AppletStatus, decode_cla

from .conftest import DEVICE_ID, EF_ICCID, make_sim

SELECT_SAFE2 = "A4 04 0C 0C F0 70 6F 64 67 73 61 66 65 32 01 01"


def tx(sim, apdu_hex: str) -> str:
    return sim.transmit(bytes.fromhex(apdu_hex.replace(" ", "")), 0).hex().upper()


def test_atr_checksum():
    assert ATR[0] == 0x3B
    x = 0
    for b in ATR[1:]:
        x ^= b
    assert x == 0  # TCK makes the XOR of T0..TCK zero (ISO/IEC 7816-3 §8.2.5)


def test_manage_channel_open_close_and_exhaustion(sim):
    assert tx(sim, "00 70 00 00 01") == "019000"
    assert tx(sim, "00 70 00 00 01") == "029000"
    assert tx(sim, "00 70 80 01 00") == "9000"
    assert tx(sim, "00 70 00 00 01") == "019000"  # lowest free number is reused
    for n in range(3, 8):
        assert tx(sim, "00 70 00 00 01") == f"0{n}9000"
    assert tx(sim, "00 70 00 00 01") == "6A81"  # no free channel
    assert tx(sim, "00 70 80 05 00") == "9000"
    assert tx(sim, "00 70 80 05 00") == "6881"  # already closed
    assert tx(sim, "00 70 80 00 00") == "6A86"  # basic channel cannot be closed
    assert tx(sim, "00 70 00 00 02") == "6C01"
    assert tx(sim, "00 70 00 00") == "6C01"
    assert tx(sim, "00 70 40 00 01") == "6A86"
    assert tx(sim, "00 70 00 05") == "9000"  # open a given channel
    assert tx(sim, "00 70 00 05") == "6A81"


def test_channel_close_via_cla(sim):
    assert tx(sim, "00 70 00 00 01") == "019000"
    assert tx(sim, "01 70 80 00 00") == "9000"
    assert tx(sim, "01 A4 00 0C 02 3F 00") == "6881"


def test_command_on_closed_channel_is_6881(sim):
    assert tx(sim, "02 " + SELECT_SAFE2) == "6881"
    assert tx(sim, "41 " + SELECT_SAFE2) == "6881"  # channel 5 not open
    assert tx(sim, "4F " + SELECT_SAFE2) == "6881"  # channel 19 beyond this card


def test_further_interindustry_cla_for_channels_4_to_7(sim):
    for n in range(1, 8):
        assert tx(sim, "00 70 00 00 01") == f"0{n}9000"
    assert tx(sim, "40 " + SELECT_SAFE2) == "9000"  # channel 4 = 0x40 | (4 - 4)
    assert tx(sim, "43 CC 02 00 00") == "6D00"  # channel 7: nothing selected there
    assert tx(sim, "43 " + SELECT_SAFE2) == "9000"
    assert tx(sim, "43 CC 02 00 04") == "000000009000"


@pytest.mark.parametrize(
    ("cla", "channel", "proprietary"),
    [
        (0x00, 0, False),
        (0x03, 3, False),
        (0x40, 4, False),
        (0x4F, 19, False),
        (0x80, 0, True),
        (0x81, 1, True),
        (0xC0, 4, True),
        (0xCF, 19, True),
    ],
)
def test_cla_decoding(cla, channel, proprietary):
    assert decode_cla(cla) == (channel, proprietary)


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("A0 A4 00 00 02 3F 00", "6E00"),  # GSM class
        ("FF A4 00 00 02 3F 00", "6E00"),
        ("04 A4 00 0C 02 3F 00", "6882"),  # secure messaging
        ("10 A4 00 0C 02 3F 00", "6884"),  # chaining
        ("60 A4 00 0C 02 3F 00", "6882"),
        ("50 A4 00 0C 02 3F 00", "6884"),
        ("00 A4 00", "6700"),
        ("00 A4 00 0C 03 3F 00", "6700"),
        ("00 A4 00 0C 01 3F 00 00 00", "6700"),
        ("00 EE 00 00 00", "6D00"),  # unknown INS
        ("00 60 00 00 00", "6D00"),  # invalid INS (procedure byte)
        ("80 A4 00 0C 02 3F 00", "6E00"),  # ISO INS in the TS 102 221 class
        ("00 12 00 00 10", "6E00"),  # FETCH in the ISO class
        ("80 EE 00 00 00", "6D00"),
    ],
)
def test_bad_apdus(sim, apdu, sw):
    assert tx(sim, apdu) == sw


def test_select_safe2_fci_and_get_response(sim):
    assert tx(sim, "00 70 00 00 01") == "019000"
    r = tx(sim, "01 A4 04 00 0C F0 70 6F 64 67 73 61 66 65 32 01 01")
    assert r[:2] == "61"
    n = int(r[2:], 16)
    fci = tx(sim, f"01 C0 00 00 {n:02X}")
    assert fci.startswith("6F") and "840CF0706F646773616665320101" in fci and fci.endswith("9000")
    assert tx(sim, "01 C0 00 00 01") == "6985"  # nothing left


def test_get_response_rules(sim):
    r = tx(sim, "00 A4 04 00 0C F0 70 6F 64 67 73 61 66 65 32 01 01")
    n = int(r[2:], 16)
    assert tx(sim, f"00 C0 00 00 {n + 1:02X}") == f"6C{n:02X}"  # wrong Le, data kept
    part = tx(sim, "00 C0 00 00 04")
    assert part.endswith(f"61{n - 4:02X}")  # partial read, rest announced
    rest = tx(sim, f"00 C0 00 00 {n - 4:02X}")
    assert rest.endswith("9000") and len(rest) == 2 * (n - 4) + 4
    assert tx(sim, "00 C0 01 00 04") == "6A86"
    # the response waits only until the next command on the channel
    tx(sim, "00 A4 04 00 0C F0 70 6F 64 67 73 61 66 65 32 01 01")
    tx(sim, "00 A4 00 0C 02 3F 00")
    assert tx(sim, "00 C0 00 00 10") == "6985"


def test_select_partial_aid_and_unknown_aid(sim):
    assert tx(sim, "00 A4 04 0C 05 F0 70 6F 64 67") == "9000"
    assert tx(sim, "00 A4 04 0C 04 F0 70 6F 64") == "6A82"  # too short to be unique
    assert tx(sim, "00 A4 04 0C 05 A0 00 00 00 87") == "6A82"
    assert tx(sim, "00 A4 04 02 05 F0 70 6F 64 67") == "6A86"
    assert tx(sim, "00 A4 07 0C 02 3F 00") == "6A86"


def test_ef_iccid_read_binary(sim):
    assert tx(sim, "00 B0 00 00 0A") == "6986"  # no EF selected
    assert tx(sim, "00 A4 00 0C 02 2F E2") == "9000"
    assert tx(sim, "00 B0 00 00 0A") == EF_ICCID.hex().upper() + "9000"
    assert tx(sim, "00 B0 00 00 00") == "6C0A"  # Le 256 > 10
    assert tx(sim, "00 B0 00 00 0B") == "6C0A"
    assert tx(sim, "00 B0 00 02 04") == EF_ICCID[2:6].hex().upper() + "9000"
    assert tx(sim, "00 B0 00 0A 01") == "6B00"
    assert tx(sim, "00 B0 00 00") == "6700"


def test_ef_iccid_fcp_sfi_and_path(sim):
    r = tx(sim, "00 A4 00 04 02 2F E2")
    assert r[:2] == "61"
    fcp = tx(sim, f"00 C0 00 00 {r[2:]}")
    assert fcp.startswith("62") and "83022FE2" in fcp and "8002000A" in fcp
    assert tx(sim, "00 A4 00 0C 02 3F 00") == "9000"
    assert tx(sim, "00 B0 82 00 0A") == EF_ICCID.hex().upper() + "9000"  # SFI 02
    assert tx(sim, "00 B0 83 00 0A") == "6A82"
    assert tx(sim, "00 A4 08 0C 02 2F E2") == "9000"
    assert tx(sim, "00 A4 00 0C 02 6F 07") == "6A82"


def test_ef_iccid_not_selectable_from_the_applet(sim):
    assert tx(sim, "00 " + SELECT_SAFE2) == "9000"
    assert tx(sim, "00 A4 00 0C 02 2F E2") == "6A82"
    assert tx(sim, "00 A4 00 0C 02 3F 00") == "9000"
    assert tx(sim, "00 A4 00 0C 02 2F E2") == "9000"


def test_per_channel_selection(sim):
    assert tx(sim, "00 70 00 00 01") == "019000"
    assert tx(sim, "01 " + SELECT_SAFE2) == "9000"
    assert tx(sim, "00 CC 02 00 04") == "6D00"  # channel 0 has the MF, not SAFE2
    assert tx(sim, "01 CC 02 00 04") == "000000009000"
    # a channel opened from channel 1 inherits its application (TS 102 221 §11.1.17)
    assert tx(sim, "01 70 00 00 01") == "029000"
    assert tx(sim, "02 CC 02 00 04") == "000000009000"


def test_safe2_instructions(sim):
    assert tx(sim, "00 70 00 00 01") == "019000"
    assert tx(sim, "01 CA 00 00 00") == "6D00"  # SAFE2 not selected
    assert tx(sim, "01 " + SELECT_SAFE2) == "9000"
    assert tx(sim, "01 CA 00 00 00") == "6985"  # no DeviceID yet
    assert tx(sim, "01 DA 02 C0 00") == "6700"
    assert tx(sim, "01 DA 02 C2 01 00") == "6A86"
    assert tx(sim, "01 DA 02 C0 10 " + DEVICE_ID.hex()) == "9000"
    assert sim.state.device_id == DEVICE_ID
    assert tx(sim, "01 CC 02 00 00") == "6104"
    assert tx(sim, "01 C0 00 00 04") == "000000009000"
    assert tx(sim, "01 CC 02 00 02") == "6C04"
    assert tx(sim, "01 CC 03 00 00") == "6A86"
    assert tx(sim, "01 CA 01 00 00") == "6985"  # nothing to read
    assert tx(sim, "01 CA 02 00 00") == "6A86"
    assert tx(sim, "01 CA 00 00 01 00") == "6700"
    assert tx(sim, "01 EE 00 00 00") == "6D00"


def test_config_request_without_terminal_profile_fails_cleanly(sim):
    tx(sim, "00 " + SELECT_SAFE2)
    tx(sim, "00 DA 02 C0 04 01020304")
    assert tx(sim, "00 CA 00 00 00") == "9000"  # no 91xx: no toolkit terminal
    assert tx(sim, "00 CC 02 00 04") == "000FF0019000"
    assert sim.state.status == AppletStatus.ERROR


def test_cat_apdus(sim):
    assert tx(sim, "80 12 00 00 10") == "6985"  # nothing to fetch
    assert tx(sim, "80 14 00 00 03 01 02 03") == "6985"  # no command outstanding
    assert tx(sim, "80 10 00 00 00") == "6700"
    assert tx(sim, "80 10 00 00 02 FF FF") == "9000"
    assert sim.terminal_profile == b"\xff\xff"
    assert tx(sim, "80 C2 00 00 02 D3 00") == "6A80"  # unknown envelope
    env = stk.build_envelope(stk.TimerExpiration(1, 0)).hex()
    assert tx(sim, f"80 C2 00 00 {len(env) // 2:02X} {env}") == "9000"  # nobody waits: ignored
    sms = stk.build_envelope(stk.SmsPpDownload(b"\x00")).hex()
    # a TPDU that is not an SMS-DELIVER: no TAR to answer to (docs/ota.md)
    assert tx(sim, f"80 C2 00 00 {len(sms) // 2:02X} {sms}") == "6F00"
    assert tx(sim, "80 F2 00 0C 00") == "9000"
    r = tx(sim, "80 F2 00 00 00")
    assert r[:2] == "6C"
    assert tx(sim, f"80 F2 00 00 {r[2:]}").startswith("62")


def test_fetch_and_terminal_response_rules():
    from ._terminal import PROFILE

    sim = make_sim()
    tp = stk.build_terminal_profile_apdu(PROFILE).hex()
    assert tx(sim, tp) == "9000"
    tx(sim, "00 " + SELECT_SAFE2)
    tx(sim, "00 DA 02 C0 04 01020304")
    r = tx(sim, "00 CA 00 00 00")
    assert r[:2] == "91"
    n = int(r[2:], 16)
    assert tx(sim, "00 CC 02 00 04").endswith(f"91{n:02X}")  # 91xx on every 9000 answer
    assert tx(sim, f"80 12 00 00 {n + 1:02X}") == f"6C{n:02X}"
    cmd = tx(sim, f"80 12 00 00 {n:02X}")
    assert cmd.endswith("9000")
    parsed = stk.parse_proactive_command(bytes.fromhex(cmd[:-4]))
    # the job opens the channel first: the watchdog is armed at its first wait (docs/sim.md)
    assert isinstance(parsed, stk.OpenChannel)
    assert tx(sim, "00 CC 02 00 04").endswith("9000")  # fetched: no more 91xx until the TR
    assert tx(sim, f"80 12 00 00 {n:02X}") == cmd  # re-FETCH gives the same command
    wrong = stk.TerminalResponse(
        stk.CommandDetails(parsed.number ^ 1 or 2, parsed.TYPE, 0),
        stk.Result(stk.GeneralResult.PERFORMED_SUCCESSFULLY),
    )
    body = stk.build_terminal_response(wrong).hex()
    assert tx(sim, f"80 14 00 00 {len(body) // 2:02X} {body}") == "6A80"
    assert tx(sim, "80 14 00 00 03 81 03 01") == "6A80"  # malformed
    good = stk.TerminalResponse.for_command(
        parsed,
        stk.Result(stk.GeneralResult.PERFORMED_SUCCESSFULLY),
        channel_status=(stk.ChannelStatus(1, True),),
        bearer=parsed.bearer,
        buffer_size=parsed.buffer_size,
    )
    body = stk.build_terminal_response(good).hex()
    assert tx(sim, f"80 14 00 00 {len(body) // 2:02X} {body}")[:2] == "91"  # next: SEND DATA


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=270))
def test_any_apdu_gets_a_status_word(apdu):
    sim = make_sim()
    resp = sim.transmit(apdu, 0)
    assert len(resp) >= 2
    assert resp[-2] in (
        0x61,
        0x62,
        0x63,
        0x67,
        0x68,
        0x69,
        0x6A,
        0x6B,
        0x6C,
        0x6D,
        0x6E,
        0x6F,
        0x90,
        0x91,
        0x93,
    )
    assert sim.last_cost_ms > 0
