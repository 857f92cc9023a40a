"""AT core (sans-I/O): line discipline, echo, replies, CME modes, URCs, CSIM pass-through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from ztp.modem import (
    NEED_DATA,
    AtCore,
    CardCommand,
    CmeError,
    NetworkConditions,
    RebootRequest,
    Registration,
)

ICCID = "8944502509186389635"


def make_core(**kw: object) -> AtCore:
    core = AtCore(0, **kw)  # type: ignore[arg-type]
    core.sim_present = True
    core.iccid = ICCID
    core.data_to_send()
    return core


def run(core: AtCore, text: bytes, now_ms: int = 0, card=None) -> bytes:
    """Feed ``text``, answer card commands with ``card(apdu)``, return everything sent."""
    core.receive_data(text, now_ms)
    out = b""
    while True:
        ev = core.next_event()
        out += core.data_to_send()
        if ev is NEED_DATA:
            return out
        if isinstance(ev, CardCommand):
            assert card is not None, f"unexpected card command {ev}"
            core.card_answered(card(ev.apdu))
        else:
            raise AssertionError(f"unexpected event {ev}")


def test_at_ok_with_echo_by_default() -> None:
    core = make_core()
    assert run(core, b"AT\r") == b"AT\r\r\nOK\r\n"


def test_ate0_turns_echo_off() -> None:
    core = make_core()
    assert run(core, b"ATE0\r") == b"ATE0\r\r\nOK\r\n"  # echoed before it takes effect
    assert run(core, b"AT\r") == b"\r\nOK\r\n"
    assert run(core, b"ATE1\r") == b"\r\nOK\r\n"
    assert run(core, b"AT\r") == b"AT\r\r\nOK\r\n"


def test_lowercase_and_leading_garbage_ignored() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    assert run(core, b"\n\x00xyat+cgmm\r\n") == b"\r\nSARA-U201\r\n\r\nOK\r\n"


def test_stray_cr_gets_no_answer() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    assert run(core, b"\r\r\n") == b""


def test_backspace_edits_the_line() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    assert run(core, b"AT+CGMX\x08M\r") == b"\r\nSARA-U201\r\n\r\nOK\r\n"


def test_identification() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    assert run(core, b"AT+CGSN\r") == b"\r\n357520070123452\r\n\r\nOK\r\n"
    assert run(core, b"AT+CGMI\r") == b"\r\nu-blox\r\n\r\nOK\r\n"
    assert run(core, b"AT+CCID\r") == b"\r\n+CCID: 8944502509186389635\r\n\r\nOK\r\n"
    assert run(core, b"AT+CPIN?\r") == b"\r\n+CPIN: READY\r\n\r\nOK\r\n"
    assert run(core, b"AT+IPR?\r") == b"\r\n+IPR: 0\r\n\r\nOK\r\n"


def test_unknown_command_and_cmee_modes() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    assert run(core, b"AT+CEREG?\r") == b"\r\nERROR\r\n"  # SARA-U201 is 2G/3G: no LTE
    assert run(core, b"AT+CMEE=1\r") == b"\r\nOK\r\n"
    assert run(core, b"AT+CEREG?\r") == b"\r\n+CME ERROR: 4\r\n"
    assert run(core, b"AT+CMEE=2\r") == b"\r\nOK\r\n"
    assert run(core, b"AT+CEREG?\r") == b"\r\n+CME ERROR: operation not supported\r\n"
    assert run(core, b"AT+CMEE?\r") == b"\r\n+CMEE: 2\r\n\r\nOK\r\n"
    # Syntax errors stay plain ERROR whatever +CMEE says.
    assert run(core, b"AT#$\r") == b"\r\nERROR\r\n"
    assert run(core, b"AT+CMEE=7\r") == b"\r\n+CME ERROR: operation not supported\r\n"


def test_sim_missing() -> None:
    core = make_core()
    core.sim_present = False
    run(core, b"ATE0;+CMEE=1\r")
    assert run(core, b"AT+CPIN?\r") == b"\r\n+CME ERROR: 10\r\n"
    assert run(core, b'AT+CSIM=10,"0070000001"\r') == b"\r\n+CME ERROR: 10\r\n"


def test_concatenated_commands_stop_at_first_error() -> None:
    core = make_core()
    line = b"ATE0&K3+CMEE=1;+CGMM\r"
    assert run(core, line) == line + b"\r\nSARA-U201\r\n\r\nOK\r\n"
    assert run(core, b"AT+CMEE=0;+CEREG?;+CMEE=2\r") == b"\r\nERROR\r\n"
    assert core.settings.cmee == 0


def test_line_too_long_is_error() -> None:
    core = make_core(max_line=20)
    run(core, b"ATE0\r")
    assert run(core, b"AT" + b"Z" * 100 + b"\r") == b"\r\nERROR\r\n"
    assert run(core, b"AT\r") == b"\r\nOK\r\n"


class Card:
    """Answers the tested APDUs as a UICC does (MANAGE CHANNEL open, 91xx, FCI)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def __call__(self, apdu: bytes) -> bytes:
        self.seen.append(apdu)
        if apdu == bytes.fromhex("0070000001"):
            return bytes.fromhex("019000")
        if apdu[1] == 0xCA:
            return bytes.fromhex("9112")  # success, proactive command pending
        if apdu[1] == 0xC0:
            return bytes(range(apdu[4] or 256)) + b"\x90\x00"
        return bytes.fromhex("6D00")


def test_csim_pass_through() -> None:
    core, card = make_core(), Card()
    run(core, b"ATE0\r")
    out = run(core, b'AT+CSIM=10,"0070000001"\r', card=card)
    assert out == b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n'
    assert card.seen == [bytes.fromhex("0070000001")]
    # 91xx goes to the host unchanged.
    out = run(core, b'AT+CSIM=10,"01ca000000"\r', card=card)
    assert out == b'\r\n+CSIM: 4,"9112"\r\n\r\nOK\r\n'


def test_csim_256_byte_answer() -> None:
    core, card = make_core(), Card()
    run(core, b"ATE0\r")
    out = run(core, b'AT+CSIM=10,"01C0000000"\r', card=card)
    body = bytes(range(256)) + b"\x90\x00"
    assert out == b'\r\n+CSIM: 516,"' + body.hex().upper().encode() + b'"\r\n\r\nOK\r\n'


def test_csim_bad_length_or_hex_is_error() -> None:
    core, card = make_core(), Card()
    run(core, b"ATE0;+CMEE=1\r")
    for line in (b'AT+CSIM=8,"0070000001"\r', b'AT+CSIM=10,"00700000XY"\r',
                 b'AT+CSIM=9,"007000000"\r', b"AT+CSIM=10,0070000001\r", b'AT+CSIM=4,"0070"\r'):
        assert run(core, line, card=card) == b"\r\n+CME ERROR: 3\r\n", line
    assert card.seen == []


def test_csim_sim_busy_fault_for_n_commands() -> None:
    core, card = make_core(), Card()
    run(core, b"ATE0;+CMEE=1\r")
    core.sim_busy_commands = 2
    for _ in range(2):
        assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card) == b"\r\n+CME ERROR: 14\r\n"
    assert run(core, b'AT+CSIM=10,"0070000001"\r', card=card).startswith(b"\r\n+CSIM: 6,")


def test_csim_card_failure() -> None:
    core = make_core()
    run(core, b"ATE0;+CMEE=2\r")
    core.receive_data(b'AT+CSIM=10,"0070000001"\r', 0)
    assert isinstance(core.next_event(), CardCommand)
    core.card_failed(CmeError.SIM_FAILURE)
    assert core.data_to_send() == b"\r\n+CME ERROR: SIM failure\r\n"


def test_input_waits_while_the_card_works() -> None:
    core = make_core()
    run(core, b"ATE0\r")
    core.receive_data(b'AT+CSIM=10,"0070000001"\rAT\r', 0)
    ev = core.next_event()
    assert ev == CardCommand(bytes.fromhex("0070000001"))
    assert core.next_event() is NEED_DATA  # blocked on the card
    assert core.data_to_send() == b""
    core.card_answered(bytes.fromhex("019000"))
    assert core.next_event() is NEED_DATA
    assert core.data_to_send() == b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n\r\nOK\r\n'


def test_registration_delay_and_urcs() -> None:
    net = NetworkConditions(registration_delay_ms=2000)
    core = make_core(network=net)
    run(core, b"ATE0\r")
    assert run(core, b"AT+CREG?\r", now_ms=10) == b"\r\n+CREG: 0,2\r\n\r\nOK\r\n"
    assert run(core, b"AT+CREG=1;+CGREG=2\r", now_ms=20) == b"\r\nOK\r\n"
    assert core.timer() == 2000
    core.handle_timer(1999)
    assert core.data_to_send() == b""
    core.handle_timer(2000)
    assert core.data_to_send() == (b'\r\n+CREG: 1\r\n'
                                   b'\r\n+CGREG: 1,"4E54","0D3744A5",2,"14"\r\n')
    assert core.packet_attached
    assert run(core, b"AT+CGREG?\r", now_ms=2001) == \
        b'\r\n+CGREG: 2,1,"4E54","0D3744A5",2,"14"\r\n\r\nOK\r\n'


def test_urc_held_back_until_the_reply_is_complete() -> None:
    net = NetworkConditions(registration_delay_ms=100)
    core = make_core(network=net)
    run(core, b"ATE0;+CREG=1\r")
    core.receive_data(b'AT+CSIM=10,"0070000001"\r', 50)
    assert isinstance(core.next_event(), CardCommand)
    core.handle_timer(150)  # registration completes while the card works
    assert core.data_to_send() == b""
    core.card_answered(bytes.fromhex("019000"))
    assert core.data_to_send() == b'\r\n+CSIM: 6,"019000"\r\n\r\nOK\r\n\r\n+CREG: 1\r\n'


def test_registration_denied_and_data_only() -> None:
    core = make_core(network=NetworkConditions(registration=Registration.DENIED))
    run(core, b"ATE0\r")
    assert run(core, b"AT+CREG?;+CGREG?\r") == b"\r\n+CREG: 0,3\r\n\r\n+CGREG: 0,3\r\n\r\nOK\r\n"
    assert not core.packet_attached
    core = make_core(network=NetworkConditions(circuit_switched=False))
    run(core, b"ATE0\r")
    assert run(core, b"AT+CREG?;+CGREG?\r") == b"\r\n+CREG: 0,2\r\n\r\n+CGREG: 0,1\r\n\r\nOK\r\n"


def test_cfun_radio_off_on_and_reboot() -> None:
    core = make_core()
    run(core, b"ATE0;+CGREG=1\r")
    assert run(core, b"AT+CFUN=4\r") == b"\r\nOK\r\n\r\n+CGREG: 0\r\n"
    assert run(core, b"AT+CFUN?\r") == b"\r\n+CFUN: 4\r\n\r\nOK\r\n"
    # Searching first, then registered (no registration delay here).
    assert run(core, b"AT+CFUN=1\r") == b"\r\nOK\r\n\r\n+CGREG: 2\r\n\r\n+CGREG: 1\r\n"
    core.receive_data(b"AT+CFUN=16\r", 0)
    assert core.next_event() == RebootRequest(reset_sim=False)
    assert core.data_to_send() == b"\r\nOK\r\n"
    core.reboot(10)
    assert core.settings.echo and core.settings.cgreg_n == 0


def test_greeting_after_boot() -> None:
    core = AtCore(0, greeting="SARA ready")
    assert core.data_to_send() == b"\r\nSARA ready\r\n"
    core.reboot(5)
    assert core.data_to_send() == b"\r\nSARA ready\r\n"


SCRIPT = (b"ATE0\r", b"AT+CMEE=2\r", b'AT+CSIM=10,"0070000001"\r', b"AT+CREG?\r",
          b"AT+FOO\r", b'AT+CSIM=10,"01CA000000"\r', b"AT+CGREG?\r")


def whole_output(chunks: list[bytes]) -> bytes:
    core, card = make_core(), Card()
    return b"".join(run(core, c, card=card) for c in chunks)


@given(st.lists(st.integers(min_value=0, max_value=sum(map(len, SCRIPT))), max_size=12))
def test_split_anywhere_gives_the_same_bytes(cuts: list[int]) -> None:
    stream = b"".join(SCRIPT)
    points = sorted(set(cuts))
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert whole_output(chunks) == whole_output([stream])


def test_one_byte_at_a_time() -> None:
    stream = b"".join(SCRIPT)
    assert whole_output([bytes([b]) for b in stream]) == whole_output([stream])


@given(st.binary(max_size=300))
def test_garbage_never_crashes(data: bytes) -> None:
    core, card = make_core(max_line=64), Card()
    run(core, data + b"\r", card=card)
    run(core, b"ATE0\r", card=card)
    assert run(core, b"AT\r") == b"\r\nOK\r\n"


def test_command_groups_do_not_overlap() -> None:
    # The core's table is the union of the groups: a name in two groups would silently
    # lose one handler.
    from ztp.modem._at_general import GENERAL_COMMANDS
    from ztp.modem._at_radio import RADIO_COMMANDS
    from ztp.modem._at_sim import SIM_COMMANDS

    groups = (GENERAL_COMMANDS, RADIO_COMMANDS, SIM_COMMANDS)
    assert sum(len(g) for g in groups) == len({name for g in groups for name in g})
