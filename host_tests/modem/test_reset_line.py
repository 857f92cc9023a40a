"""GSM_RESETN: high on the MKR's pin holds the SARA's RESET_N low. A pulse of at least 50 ms
(SARA-U2 data sheet UBX-13005287: "LOW level for 50 ms (minimum)") resets the module, which
boots when released; a shorter one is ignored. MKRGSM's ModemClass::begin pulses high 150 us,
low 3 ms, high 600 ms, then low."""

from __future__ import annotations

import asyncio
import re

import pytest
from ztp.modem import Habits, LatencyModel, ResetAction, ResetLine, ResetPulse, VirtualModem

from .cards import BipCard
from .test_modem import FINAL, Host, run, until

HOLD, RESET, RESUME, BOOT = ResetAction.HOLD, ResetAction.RESET, ResetAction.RESUME, \
    ResetAction.BOOT
ICCID = "8944502509186389635"
SAFE2_AID = "F0706F646773616665320101"


def test_mkrgsm_begin_sequence() -> None:
    line = ResetLine(50)
    # high 150 us (0 ms on a millisecond clock), low 3 ms: too short, ignored
    assert line.set(True, 0) == [HOLD]
    assert line.set(False, 0) == [RESUME]
    # high 600 ms: a reset after 50 ms, a boot when released
    assert line.set(True, 3) == [HOLD]
    assert line.timer() == 53
    assert line.handle_timer(52) == []
    assert line.handle_timer(53) == [RESET]
    assert line.timer() is None and line.in_reset
    assert line.set(True, 100) == []  # already high
    assert line.set(False, 603) == [BOOT]
    assert line.pulses == [ResetPulse(0, 0, False), ResetPulse(3, 600, True)]
    assert line.set(False, 700) == []  # already low


def test_a_deadline_nobody_watched_still_resets() -> None:
    line = ResetLine(50)
    line.set(True, 0)
    assert line.set(False, 100) == [RESET, BOOT]
    line = ResetLine(50)
    line.set(True, 0)
    assert line.set(False, 49) == [RESUME]
    assert line.pulses == [ResetPulse(0, 49, False)]


def test_zero_minimum_resets_at_once() -> None:
    line = ResetLine(0)
    assert line.set(True, 7) == [HOLD, RESET]
    assert line.set(False, 7) == [BOOT]
    with pytest.raises(ValueError):
        ResetLine(-1)


def test_modem_pulse_reboots_drops_links_and_ignores_what_it_hears() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        latency = LatencyModel(reboot_ms=50)  # short boot: a fast test
        async with VirtualModem(card, greeting="SARA ready", latency=latency) as modem:
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            await until(lambda: b"".join(out) == b"\r\nSARA ready\r\n", "the first greeting")
            out.clear()
            modem.set_reset_line(True)
            modem.feed(b"AT\r")  # deaf
            await asyncio.sleep(0.08)  # 80 ms > 50 ms: in reset now
            assert modem.reboots == 0 and out == [] and modem.reset_line_high
            modem.set_reset_line(False)
            await until(lambda: modem.reboots == 1 and card.reset_count == 2, "the boot")
            await until(lambda: b"".join(out) == b"\r\nSARA ready\r\n", "the greeting")
            assert modem.core.commands_seen == 0  # the AT sent during the pulse is gone
            [pulse] = modem.reset_pulses
            assert pulse.effective and pulse.held_ms >= 50
            await asyncio.sleep(0.06)  # booted (reboot_ms)
            modem.feed(b"AT\r")
            await until(lambda: b"".join(out).endswith(b"AT\r\r\nOK\r\n"), "a fresh modem")

    run(main)


def test_modem_short_pulse_is_ignored() -> None:
    async def main() -> None:
        card = BipCard(("127.0.0.1", 9))
        async with VirtualModem(card, habits=Habits(min_reset_pulse_ms=200)) as modem:
            run_core = modem.core
            await asyncio.to_thread(modem.set_reset_line, True)  # from the firmware's thread
            await until(lambda: modem.reset_line_high, "the line high")
            await asyncio.sleep(0.03)
            await asyncio.to_thread(modem.set_reset_line, False)
            await until(lambda: len(modem.reset_pulses) == 1, "the pulse recorded")
            assert not modem.reset_pulses[0].effective
            assert modem.reboots == 0 and card.reset_count == 1 and modem.core is run_core
            out: list[bytes] = []
            modem.observers.append(lambda kind, info: out.append(info["data"])
                                   if kind == "at_tx" else None)
            modem.feed(b"AT\r")
            await until(lambda: b"".join(out) == b"AT\r\r\nOK\r\n", "the answer")

    run(main)


def test_reset_closes_logical_channel_sessions() -> None:
    sim_mod = pytest.importorskip("ztp.sim")
    sim = sim_mod.VirtualSim(sim_mod.CardState.create(ICCID, bytes(range(16)), "127.0.0.1", 9))

    async def main() -> None:
        habits = Habits(min_reset_pulse_ms=20)
        latency = LatencyModel(reboot_ms=0, sim_init_ms=0)  # instant boot: a fast test
        async with VirtualModem(sim, apply_card_cost=False, habits=habits,
                                latency=latency) as modem:
            host = Host(f"socket://{':'.join(map(str, await modem.serve_tcp()))}")
            try:
                await host.command(b"ATE0;+CMEE=1")
                assert await host.command(b'AT+CCHO="%s"' % SAFE2_AID.encode()) == \
                    b"\r\n+CCHO: 1\r\n\r\nOK\r\n"
                # a pulse shorter than the minimum keeps the session
                modem.set_reset_line(True)
                modem.set_reset_line(False)
                assert modem.core.uicc.sessions == {1: 1}
                # the MKRGSM pulse (scaled: 20 ms minimum here) resets the modem
                modem.set_reset_line(True)
                await asyncio.sleep(0.04)
                modem.set_reset_line(False)
                await until(lambda: modem.reboots == 1, "the boot")
                await asyncio.sleep(0.02)
                host.buf = b""
                assert modem.core.uicc.sessions == {}
                reply = await host.command(b"AT+CMEE=1;+CGLA=1,10,\"00CA000000\"")
                assert reply == b"AT+CMEE=1;+CGLA=1,10,\"00CA000000\"\r\r\n+CME ERROR: 21\r\n"
                # the card was reset as well: channel 1 is free again
                reply = await host.command(b'AT+CCHO="%s"' % SAFE2_AID.encode())
                assert re.search(rb"\+CCHO: 1\r\n\r\nOK\r\n$", reply), reply
                assert FINAL.search(reply)
            finally:
                host.close()

    run(main)
