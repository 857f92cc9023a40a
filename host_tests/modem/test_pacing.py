"""Command pacing (u-blox AT commands manual §2.2.5.1: the DTE should wait "at least 20 ms"
after a final result code or URC before the next command; MKRGSM waits 20 ms): with
``Habits.min_command_gap_ms`` a line that starts sooner is lost or answered ERROR."""

from __future__ import annotations

import asyncio

from ztp.modem import (
    NEED_DATA,
    CardCommand,
    EarlyCommand,
    Habits,
    NetworkConditions,
    VirtualModem,
)

from .cards import BipCard
from .test_at import make_core, run
from .test_modem import run as run_async
from .test_modem import until

OK_ECHOED = b"AT\r\r\nOK\r\n"
GAP = Habits(min_command_gap_ms=20)


def test_off_by_default() -> None:
    core = make_core()
    assert core.habits.min_command_gap_ms == 0
    assert run(core, b"AT\rAT\r") == OK_ECHOED * 2


def test_command_inside_the_gap_is_lost() -> None:
    core = make_core(habits=GAP)
    assert run(core, b"AT\r", 100) == OK_ECHOED
    assert run(core, b"AT\r", 110) == b""  # no echo, no result code: the DTE times out
    assert run(core, b"AT\r", 118) == b""
    assert core.early_commands == 2
    assert run(core, b"AT\r", 120) == OK_ECHOED  # 20 ms after the OK
    assert run(core, b"AT+CGMM\r", 140) == b"AT+CGMM\r\r\nSARA-U201\r\n\r\nOK\r\n"


def test_one_millisecond_tick_is_forgiven() -> None:
    # A DTE that counted 20 ticks of its own millisecond clock may have waited 19.x ms.
    core = make_core(habits=GAP)
    assert run(core, b"AT\r", 100) == OK_ECHOED
    assert run(core, b"AT\r", 119) == OK_ECHOED
    assert run(core, b"AT\r", 137) == b""


def test_command_inside_the_gap_answered_error() -> None:
    core = make_core(habits=Habits(min_command_gap_ms=20, early_command=EarlyCommand.ERROR))
    assert run(core, b"ATE0\r", 0) == b"ATE0\r\r\nOK\r\n"
    assert run(core, b"AT+CGMM\r", 5) == b"\r\nERROR\r\n"  # not executed
    assert run(core, b"ATE1\r", 20) == b"\r\nERROR\r\n"  # 15 ms after the first ERROR
    assert not core.settings.echo
    assert run(core, b"AT+CGMM\r", 45) == b"\r\nSARA-U201\r\n\r\nOK\r\n"
    assert core.early_commands == 2


def test_several_lines_in_one_chunk_are_too_fast() -> None:
    core = make_core(habits=GAP)
    assert run(core, b"AT\rAT+CGMM\rAT\r", 0) == OK_ECHOED


def test_a_urc_restarts_the_gap_echo_does_not() -> None:
    net = NetworkConditions(registration_delay_ms=1000)
    core = make_core(habits=GAP, network=net)
    assert run(core, b"AT+CREG=1\r", 0).endswith(b"\r\nOK\r\n")
    core.handle_timer(1000)
    assert core.data_to_send() == b"\r\n+CREG: 1\r\n"
    assert run(core, b"AT\r", 1010) == b""  # 10 ms after the URC
    assert run(core, b"xy", 1015) == b"xy"  # echoed garbage is not a response
    assert run(core, b"AT\r", 1020) == OK_ECHOED


def test_each_byte_keeps_its_arrival_time() -> None:
    core = make_core(habits=GAP)
    assert run(core, b"AT\r", 0) == OK_ECHOED
    # Buffered before anything runs: the first line arrived too early, the second did not.
    core.receive_data(b"AT+CGMM\r", 5)
    core.receive_data(b"AT\r", 30)
    assert run(core, b"", 30) == OK_ECHOED
    # The line starts when its "A" arrives, even if the rest comes later.
    assert run(core, b"A", 40) == b""
    assert run(core, b"T\r", 70) == b""
    assert run(core, b"A", 70) == b"A"
    assert run(core, b"T\r", 71) == b"T\r\r\nOK\r\n"


def test_gap_counts_from_the_card_answer() -> None:
    core = make_core(habits=GAP)
    core.receive_data(b'AT+CSIM=10,"0070000001"\r', 0)
    assert core.next_event() == CardCommand(bytes.fromhex("0070000001"))
    core.card_answered(bytes.fromhex("019000"), 50)  # the card took 50 ms
    assert core.next_event() is NEED_DATA
    assert core.data_to_send().endswith(b'+CSIM: 6,"019000"\r\n\r\nOK\r\n')
    assert run(core, b"AT\r", 60) == b""
    assert run(core, b"AT\r", 70) == OK_ECHOED


def test_gap_counts_from_when_rts_let_the_answer_out() -> None:
    core = make_core(habits=Habits(min_command_gap_ms=20, rts_asserted=False))
    assert run(core, b"AT\r", 0) == b""
    core.set_rts(True, 100)  # the DTE sees the OK only now
    assert core.data_to_send() == OK_ECHOED
    assert run(core, b"AT\r", 110) == b""
    assert run(core, b"AT\r", 120) == OK_ECHOED


def test_the_greeting_counts() -> None:
    core = make_core(habits=GAP, greeting="SARA ready")
    assert run(core, b"AT\r", 10) == b""
    assert run(core, b"AT\r", 20) == OK_ECHOED


def test_strict_habits() -> None:
    strict = Habits.strict()
    assert (strict.rts_asserted, strict.min_command_gap_ms) == (False, 20)
    assert Habits.strict(min_command_gap_ms=30).min_command_gap_ms == 30


def test_driver_loses_a_command_sent_right_after_a_reply() -> None:
    async def main() -> None:
        async with VirtualModem(BipCard(("127.0.0.1", 9)), habits=GAP) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            modem.feed(b"AT\r")  # a DTE that does not wait for the 20 ms
            await until(lambda: modem.core.early_commands == 1, "the early command")
            await asyncio.sleep(0.03)
            assert b"".join(out) == OK_ECHOED
            modem.feed(b"AT\r")  # paced: answered
            await until(lambda: b"".join(out) == OK_ECHOED * 2, "the paced answer")

    run_async(main)
