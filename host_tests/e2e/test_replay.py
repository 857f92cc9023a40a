"""The same AT byte stream reaches the modem whether the firmware runs on CPython or on the
MicroPython runtime: record the AT conversation of an end-to-end run, replay the modem's side
to the firmware on both, and compare the bytes each one sends."""

from __future__ import annotations

from pathlib import Path

import pytest
from ztp.demo import DEMO_DEVICE_ID, Conversation, Outcome, ReplayUart, Stack, run_under_micropython
from ztp.device import run_provisioning
from ztp.modem import LatencyModel
from ztp.sim import CostModel

from .conftest import run

pytestmark = pytest.mark.timeout(120)


class _VirtualClock:
    def __init__(self) -> None:
        self.now = 1000

    def ticks_ms(self) -> int:
        return self.now & 0x3FFFFFFF

    def sleep_ms(self, ms: int) -> None:
        self.now += ms


@pytest.fixture(scope="module")
def recorded() -> tuple[Outcome, Conversation]:
    async def body(stack: Stack) -> Outcome:
        return await stack.provision()  # the replays below use the same Options

    # registration takes a while and the SIM is slow: the firmware's registration and status
    # polling loops both run more than once, so the replay covers them
    outcome = run(body, latency=LatencyModel(registration_delay_ms=300, network_rtt_ms=100),
                  sim_cost=CostModel().after_pps())
    assert outcome.code == 0
    return outcome, Conversation.from_events(outcome.events)


def test_recording_holds_what_the_firmware_sent(recorded):
    outcome, conv = recorded
    assert conv.sent == outcome.at_sent
    assert conv.sent.count(b"\r") == len(conv.segments) - 1
    assert b'AT+CSIM=10,"01CA000000"\r' in conv.sent
    replies = b"".join(conv.segments)
    assert b"+CREG: 0,2" in replies and b"+CREG: 0,1" in replies
    assert b'+CSIM: 12,"00010000' in replies  # status 0001: still busy


def test_replay_on_cpython_sends_the_same_bytes(recorded, tmp_path: Path):
    outcome, conv = recorded
    uart = ReplayUart(conv)
    code, detail = run_provisioning(uart, DEMO_DEVICE_ID, tmp_path, attempts=3,
                                    poll_deadline_ms=60_000, reg_deadline_ms=30_000,
                                    clock=_VirtualClock())
    assert (code, detail) == (0, "OK")
    assert bytes(uart.written) == outcome.at_sent


def test_replay_on_micropython_sends_the_same_bytes(recorded):
    outcome, conv = recorded
    mp = run_under_micropython(conv, DEMO_DEVICE_ID, attempts=3, poll_deadline_ms=60_000,
                               reg_deadline_ms=30_000)
    assert (mp.code, mp.detail) == (0, "OK"), mp.stdout[-2000:]
    assert mp.sent == outcome.at_sent
