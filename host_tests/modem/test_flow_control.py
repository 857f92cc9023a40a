"""Hardware flow control: with &K3 (the default) the modem holds its output while the DTE's RTS
is off and releases it when RTS comes on or AT&K0 turns flow control off (SARA-G3/U2 system
integration manual UBX-13000995 §1.9.1.4 table 11). Input is read and executed meanwhile."""

from __future__ import annotations

import asyncio

from ztp.modem import Habits, NetworkConditions, VirtualModem

from .cards import BipCard
from .test_at import make_core, run
from .test_modem import run as run_async
from .test_modem import until

OK_ECHOED = b"AT\r\r\nOK\r\n"


def test_rts_off_holds_output_until_rts_on() -> None:
    core = make_core(habits=Habits(rts_asserted=False))
    assert core.output_held
    assert run(core, b"AT\r") == b""  # executed, answer waiting in the modem
    assert run(core, b"ATE0\r") == b""
    assert not core.settings.echo  # the held command did run
    core.set_rts(True, 5)
    assert not core.output_held
    assert core.data_to_send() == OK_ECHOED + b"ATE0\r\r\nOK\r\n"
    assert run(core, b"AT\r") == b"\r\nOK\r\n"


def test_rts_drop_holds_again_and_urcs_wait_too() -> None:
    core = make_core(network=NetworkConditions(registration_delay_ms=100))
    assert run(core, b"ATE0;+CREG=1\r") == b"ATE0;+CREG=1\r\r\nOK\r\n"
    core.set_rts(False, 10)
    core.handle_timer(100)  # registered: +CREG: 1 is raised while RTS is off
    assert core.data_to_send() == b""
    core.set_rts(True, 150)
    assert core.data_to_send() == b"\r\n+CREG: 1\r\n"


def test_at_k0_releases_the_output_and_ignores_rts() -> None:
    core = make_core(habits=Habits(rts_asserted=False))
    assert run(core, b"ATE0\r") == b""
    # AT&K0 is read although nothing comes back; its OK and what was held then flow.
    assert run(core, b"AT&K0\r") == b"ATE0\r\r\nOK\r\n\r\nOK\r\n"
    assert run(core, b"AT\r") == b"\r\nOK\r\n"
    core.set_rts(False, 0)
    assert run(core, b"AT\r") == b"\r\nOK\r\n"  # no flow control: RTS does not matter
    # &K3 (and &F, which restores it) hold again: the OK of AT&K3 itself waits.
    assert run(core, b"AT&K3\r") == b""
    core.set_rts(True, 1)
    assert core.data_to_send() == b"\r\nOK\r\n"


def test_held_output_is_bounded() -> None:
    core = make_core(habits=Habits(rts_asserted=False, max_held_output=64))
    for _ in range(20):
        run(core, b"AT\r")
    core.set_rts(True, 0)
    out = core.data_to_send()
    assert len(out) == 64
    assert out.startswith(OK_ECHOED * 7)
    assert len(out) + core.output_dropped == 20 * len(OK_ECHOED)


def test_rts_survives_a_reboot_flow_control_does_not() -> None:
    core = make_core(habits=Habits(rts_asserted=False))
    run(core, b"AT&K0\r")
    assert run(core, b"AT\r") == OK_ECHOED
    run(core, b"AT\r")
    core.reboot(10)  # &K3 again, RTS still off (it is the DTE's wire)
    assert core.output_held and not core.rts
    assert run(core, b"AT\r") == b""
    core.set_rts(True, 20)
    assert core.data_to_send() == OK_ECHOED


def test_pty_modem_starts_with_rts_asserted() -> None:
    async def main() -> None:
        async with VirtualModem(BipCard(("127.0.0.1", 9))) as modem:
            assert modem.rts and modem.habits.rts_asserted
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            await until(lambda: b"".join(out) == OK_ECHOED, "the answer")

    run_async(main)


def test_rts_deasserted_modem_answers_after_set_rts_from_another_thread() -> None:
    async def main() -> None:
        habits = Habits(rts_asserted=False)
        async with VirtualModem(BipCard(("127.0.0.1", 9)), habits=habits) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            await until(lambda: modem.core.commands_seen == 1, "the command read")
            await asyncio.sleep(0.05)
            assert out == [] and not modem.rts
            await asyncio.to_thread(modem.set_rts, True)  # the firmware's thread drives RTS
            await until(lambda: b"".join(out) == OK_ECHOED, "the held answer")
            assert modem.rts
            # RTS off again, then AT&K0: the modem talks regardless of RTS.
            modem.set_rts(False)
            modem.feed(b"AT&K0\r")
            await until(lambda: b"".join(out) == OK_ECHOED + b"AT&K0\r\r\nOK\r\n", "&K0")

    run_async(main)
