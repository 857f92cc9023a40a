"""The firmware against a modem whose UART drops bytes (``Faults.uart_drop_rate``): it recovers
from lost replies by re-asking, and ends OK once the line is clean."""

from __future__ import annotations

from typing import Any

import pytest
from ztp.demo import DEMO_CONFIG, Event, Outcome, Stack
from ztp.modem import Faults

from .conftest import run

pytestmark = pytest.mark.timeout(90)


def _heal_at(needle: bytes, after: int = 1) -> Any:
    """A stack listener that sets the drop rate to 0 when the modem has received `needle`
    `after` times (runs in the event loop's thread, as the modem's observers do)."""
    seen = [0]

    def listener(stack: Stack, ev: Event) -> None:
        if ev.source == "modem" and ev.kind == "at_rx" and needle in bytes(ev.info["data"]):
            seen[0] += 1
            if seen[0] == after:
                stack.modem.update_faults(uart_drop_rate=0.0)

    return listener


async def _provision(stack: Stack) -> tuple[Outcome, int]:
    outcome = await stack.provision(attempts=3)
    return outcome, stack.modem._uart.dropped


def test_every_reply_dropped_until_healed_then_ok():
    # the modem's replies to the first two AT are lost: the firmware asks again (1 s timeout
    # each) and provisions once the line is clean
    outcome, dropped = run(_provision, _heal_at(b"AT\r", after=3),
                           faults=Faults(uart_drop_rate=1.0, seed=1))
    assert (outcome.code, outcome.name) == (0, "OK"), outcome.detail
    assert outcome.at_sent.startswith(b"AT\rAT\rAT\rATE0\r")
    assert dropped == 2 * len(b"AT\r\r\nOK\r\n")
    assert outcome.config == DEMO_CONFIG.encode()


def test_seeded_drops_during_modem_start_are_recovered():
    # 5% of the bytes lost while the modem starts, a clean line from the first AT+CSIM on.
    # Seed 6 loses the R of "+CPIN: READY" ("+CPIN: EADY": before the fix in lib/modem.py,
    # SIM fatal, E_SIM with no retry) and then a byte of the next +CPIN: line (a bare OK)
    outcome, dropped = run(_provision, _heal_at(b"AT+CSIM="),
                           faults=Faults(uart_drop_rate=0.05, seed=6))
    assert dropped > 0
    assert (outcome.code, outcome.name) == (0, "OK"), outcome.detail
    logs = [str(e.info["text"]) for e in outcome.events
            if e.source == "device" and e.kind == "log"]
    assert "AT+CPIN?: unreadable answer +CPIN: EADY, retry in 500 ms" in logs, logs
    assert outcome.at_sent.count(b"AT+CPIN?\r") == 3   # asked again after each mangled answer
    assert outcome.config == DEMO_CONFIG.encode()
