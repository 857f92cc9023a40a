"""UICC access: AT+CCHO / AT+CGLA / AT+CCHC (3GPP TS 27.007 §8.45, §8.43, §8.46) on the
project's virtual SIM, and the +CSIM habits (refuse MANAGE CHANNEL / GET RESPONSE, answer 61xx
with the modem's own GET RESPONSE)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from ztp.modem import AtCore, CmeError, Habits, VirtualModem, cla_for_channel

from .test_at import Card, make_core, run
from .test_modem import Host
from .test_modem import run as run_async

sim_mod = pytest.importorskip("ztp.sim")

ICCID = "8944502509186389635"
SAFE2_AID = b"F0706F646773616665320101"  # F0 "podgsafe2" 01 01
CCHO_SAFE2 = b'AT+CCHO="' + SAFE2_AID + b'"\r'
MANAGE_OPEN = bytes.fromhex("0070000001")


class SimCard:
    """The project's VirtualSim behind a recorder: ``card(apdu) -> response``."""

    def __init__(self) -> None:
        state = sim_mod.CardState.create(ICCID, bytes(range(16)), "127.0.0.1", 9)
        self.sim = sim_mod.VirtualSim(state)
        self.seen: list[bytes] = []

    def __call__(self, apdu: bytes) -> bytes:
        self.seen.append(apdu)
        return bytes(self.sim.transmit(apdu, 0))


def core_and_card(**habits: object) -> tuple[AtCore, SimCard]:
    core, card = make_core(habits=Habits(**habits)), SimCard()  # type: ignore[arg-type]
    run(core, b"ATE0;+CMEE=1\r")
    return core, card


def test_ccho_opens_a_channel_and_selects_the_application() -> None:
    core, card = core_and_card()
    assert run(core, CCHO_SAFE2, card=card) == b"\r\n+CCHO: 1\r\n\r\nOK\r\n"
    assert card.seen[0] == MANAGE_OPEN
    assert card.seen[1] == bytes.fromhex("01A404000C") + bytes.fromhex(SAFE2_AID.decode())
    # SELECT with P2 00 left the FCI waiting (61 12): the modem fetched and dropped it
    assert card.seen[2] == bytes.fromhex("01C0000012") and len(card.seen) == 3
    assert core.uicc.sessions == {1: 1}


def test_cgla_puts_the_channel_in_cla_and_passes_61xx_through() -> None:
    core, card = core_and_card()
    run(core, CCHO_SAFE2, card=card)
    card.seen.clear()
    select = b"00A404000C" + SAFE2_AID
    out = run(core, b'AT+CGLA=1,%d,"%s"\r' % (len(select), select), card=card)
    assert out == b'\r\n+CGLA: 4,"6112"\r\n\r\nOK\r\n'  # "as it is" (TS 27.007 §8.43)
    out = run(core, b'AT+CGLA=1,10,"00C0000012"\r', card=card)
    assert out == b'\r\n+CGLA: 40,"6F10840C' + SAFE2_AID + b'A5009000"\r\n\r\nOK\r\n'
    assert [a[0] for a in card.seen] == [0x01, 0x01]  # CLA 00 -> 01: channel 1
    # A CLA that already names a channel gets the session's channel instead.
    run(core, b'AT+CGLA=1,10,"03CA000000"\r', card=card)
    assert card.seen[-1] == bytes.fromhex("01CA000000")


def test_cchc_closes_and_the_session_is_gone() -> None:
    core, card = core_and_card()
    run(core, CCHO_SAFE2, card=card)
    assert run(core, b"AT+CCHC=1\r", card=card) == b"\r\nOK\r\n"
    assert card.seen[-1] == bytes.fromhex("0070800100")
    assert core.uicc.sessions == {}
    assert run(core, b'AT+CGLA=1,10,"00CA000000"\r', card=card) == b"\r\n+CME ERROR: 21\r\n"
    assert run(core, b"AT+CCHC=1\r", card=card) == b"\r\n+CME ERROR: 21\r\n"


def test_ccho_unknown_application_closes_the_channel_again() -> None:
    core, card = core_and_card()
    assert run(core, b'AT+CCHO="A0000000871002"\r', card=card) == b"\r\n+CME ERROR: 100\r\n"
    assert card.seen[-1] == bytes.fromhex("0070800100")
    assert core.uicc.sessions == {}


def test_ccho_without_a_free_channel() -> None:
    core, card = core_and_card()
    for n in range(1, 8):  # the virtual SIM has 7 logical channels
        assert run(core, CCHO_SAFE2, card=card) == b"\r\n+CCHO: %d\r\n\r\nOK\r\n" % n
    assert run(core, CCHO_SAFE2, card=card) == b"\r\n+CME ERROR: 20\r\n"  # SIM said 6A81
    # Channels 4.. use the further interindustry CLA coding ('4X').
    run(core, b'AT+CGLA=5,10,"00CA000000"\r', card=card)
    assert card.seen[-1] == bytes.fromhex("41CA000000")


def test_cgla_refuses_manage_channel_and_gsm_authentication() -> None:
    core, card = core_and_card()
    run(core, CCHO_SAFE2, card=card)
    card.seen.clear()
    assert run(core, b'AT+CGLA=1,10,"0070800100"\r', card=card) == b"\r\n+CME ERROR: 3\r\n"
    run_gsm = b"0088000010" + b"00" * 16
    assert run(core, b'AT+CGLA=1,%d,"%s"\r' % (len(run_gsm), run_gsm), card=card) == \
        b"\r\n+CME ERROR: 3\r\n"
    assert card.seen == []


@pytest.mark.parametrize("line", [b'AT+CCHO=""\r', b"AT+CCHO=F070\r", b'AT+CCHO="F07"\r',
                                  b'AT+CCHO="' + b"00" * 17 + b'"\r', b"AT+CCHC=x\r",
                                  b'AT+CGLA=1,9,"00CA00000"\r', b'AT+CGLA=1,10,"00CA0000"\r',
                                  b"AT+CGLA=1,10,00CA000000\r"])
def test_bad_parameters(line: bytes) -> None:
    core, card = core_and_card()
    assert run(core, line, card=card) == b"\r\n+CME ERROR: 3\r\n"
    assert card.seen == []


def test_test_commands_and_unsupported_forms() -> None:
    core, card = core_and_card()
    assert run(core, b"AT+CCHO=?;+CCHC=?;+CGLA=?\r") == b"\r\nOK\r\n"
    assert run(core, b"AT+CCHO?\r") == b"\r\nERROR\r\n"


def test_session_id_offset_and_bare_ccho_answer() -> None:
    core, card = core_and_card(session_id_offset=100, ccho_prefix=False)
    assert run(core, CCHO_SAFE2, card=card) == b"\r\n101\r\n\r\nOK\r\n"
    assert run(core, b'AT+CGLA=1,10,"00CA000000"\r', card=card) == b"\r\n+CME ERROR: 21\r\n"
    out = run(core, b'AT+CGLA=101,10,"00CA000000"\r', card=card)
    assert out.startswith(b'\r\n+CGLA: 4,"') and card.seen[-1][0] == 0x01


def test_logical_channel_commands_can_be_absent() -> None:
    core, card = core_and_card(logical_channel_commands=False)
    for line in (CCHO_SAFE2, b"AT+CCHC=1\r", b'AT+CGLA=1,10,"00CA000000"\r', b"AT+CCHO=?\r"):
        assert run(core, line, card=card) == b"\r\n+CME ERROR: 4\r\n", line


def test_sim_busy_and_missing_sim_apply_too() -> None:
    core, card = core_and_card()
    core.sim_busy_commands = 1
    assert run(core, CCHO_SAFE2, card=card) == b"\r\n+CME ERROR: 14\r\n"
    core.sim_present = False
    assert run(core, CCHO_SAFE2, card=card) == b"\r\n+CME ERROR: 10\r\n"
    assert card.seen == []


def test_card_failure_mid_procedure() -> None:
    core, card = core_and_card()
    core.receive_data(CCHO_SAFE2, 0)
    assert core.next_event().apdu == MANAGE_OPEN  # type: ignore[union-attr]
    core.card_answered(bytes.fromhex("019000"))
    assert core.next_event().apdu[1] == 0xA4  # type: ignore[union-attr]
    core.card_failed(CmeError.SIM_FAILURE)
    assert core.data_to_send() == b"\r\n+CME ERROR: 13\r\n"
    assert core.uicc.sessions == {}
    assert run(core, b"AT\r") == b"\r\nOK\r\n"


def test_reboot_forgets_the_sessions() -> None:
    core, card = core_and_card()
    run(core, CCHO_SAFE2, card=card)
    core.reboot(0)
    assert core.uicc.sessions == {}


# ---------------------------------------------------------------------- +CSIM habits
def test_csim_refuses_manage_channel() -> None:
    core, card = make_core(habits=Habits(csim_refuses_manage_channel=True)), Card()
    run(core, b"ATE0;+CMEE=1\r")
    for apdu in (b"0070000001", b"0070800100"):
        assert run(core, b'AT+CSIM=10,"%s"\r' % apdu, card=card) == b"\r\n+CME ERROR: 3\r\n"
    assert card.seen == []
    assert run(core, b'AT+CSIM=10,"01C0000004"\r', card=card).startswith(b"\r\n+CSIM: 12,")
    run(core, b"AT+CMEE=2\r")
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card) == \
        b"\r\n+CME ERROR: operation not allowed\r\n"


def test_csim_refuses_get_response_with_the_chosen_error() -> None:
    habits = Habits(csim_refuses_get_response=True,
                    csim_refusal=CmeError.OPERATION_NOT_SUPPORTED)
    core, card = make_core(habits=habits), Card()
    run(core, b"ATE0;+CMEE=1\r")
    assert run(core, b'AT+CSIM=10,"01C0000004"\r', card=card) == b"\r\n+CME ERROR: 4\r\n"
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card) == \
        b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n'


def test_csim_refusals_change_live() -> None:
    core, card = make_core(), Card()
    run(core, b"ATE0;+CMEE=1\r")
    core.set_habits(Habits(csim_refuses_manage_channel=True))
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card) == b"\r\n+CME ERROR: 3\r\n"
    core.set_habits(Habits())
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card).startswith(b"\r\n+CSIM: 6,")


def test_csim_modem_answers_61xx_itself() -> None:
    core, card = core_and_card(csim_gets_response_itself=True)
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card) == \
        b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n'
    select = b"01A404000C" + SAFE2_AID
    out = run(core, b'AT+CSIM=%d,"%s"\r' % (len(select), select), card=card)
    assert out == b'\r\n+CSIM: 40,"6F10840C' + SAFE2_AID + b'A5009000"\r\n\r\nOK\r\n'
    assert card.seen[-1] == bytes.fromhex("01C0000012")  # on the command's channel


def test_cla_for_channel() -> None:
    assert cla_for_channel(0x00, 1) == 0x01
    assert cla_for_channel(0x03, 2) == 0x02  # the DTE's channel bits are replaced
    assert cla_for_channel(0x80, 3) == 0x83  # proprietary ('8X')
    assert cla_for_channel(0x0C, 1) == 0x0D  # secure messaging bits kept
    assert cla_for_channel(0x00, 4) == 0x40  # further interindustry ('4X')
    assert cla_for_channel(0x80, 19) == 0xCF  # proprietary further ('CX')
    assert cla_for_channel(0x10, 5) == 0x51  # command chaining kept
    assert cla_for_channel(0x41, 0) == 0x00
    with pytest.raises(ValueError):
        cla_for_channel(0x00, 20)


# ---------------------------------------------------------------------- feeding
SCRIPT = (CCHO_SAFE2, b'AT+CGLA=1,10,"00CA000000"\r', b"AT+CCHC=1\r", b"AT+CCHC=1\r")


def _output(feed: Callable[[AtCore, SimCard], bytes]) -> bytes:
    core, card = core_and_card()
    return feed(core, card)


def test_script_fed_whole_byte_by_byte_and_with_trailing_data() -> None:
    stream = b"".join(SCRIPT)
    whole = _output(lambda core, card: run(core, stream, card=card))
    assert whole.count(b"\r\nOK\r\n") == 3 and whole.endswith(b"\r\n+CME ERROR: 21\r\n")
    assert _output(lambda core, card: b"".join(run(core, bytes([b]), card=card)
                                               for b in stream)) == whole
    with_tail = _output(lambda core, card: run(core, stream + b"AT", card=card))
    assert with_tail == whole


# ---------------------------------------------------------------------- through the driver
def test_ccho_cgla_cchc_through_pyserial() -> None:
    sim = SimCard().sim

    async def main() -> None:
        async with VirtualModem(sim, apply_card_cost=False) as modem:
            host = Host(f"socket://{':'.join(map(str, await modem.serve_tcp()))}")
            try:
                await host.command(b"ATE0")
                assert await host.command(CCHO_SAFE2[:-1]) == b"\r\n+CCHO: 1\r\n\r\nOK\r\n"
                reply = await host.command(b'AT+CGLA=1,10,"00C0000000"')
                assert re.fullmatch(rb'\r\n\+CGLA: 4,"[0-9A-F]{4}"\r\n\r\nOK\r\n', reply), reply
                assert await host.command(b"AT+CCHC=1") == b"\r\nOK\r\n"
            finally:
                host.close()

    run_async(main)
