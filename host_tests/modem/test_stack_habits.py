"""``StackOptions.habits`` reaches the modem the demo stack builds: the firmware's lib/
provisions through a modem that paces commands (20 ms) and refuses MANAGE CHANNEL through
AT+CSIM, so it has to use AT+CCHO / AT+CGLA / AT+CCHC."""

from __future__ import annotations

import asyncio

import pytest
from ztp.modem import Habits

demo = pytest.importorskip("ztp.demo")
sim_mod = pytest.importorskip("ztp.sim")

pytestmark = pytest.mark.timeout(60)


def test_firmware_provisions_through_ccho_on_a_paced_modem() -> None:
    habits = Habits(min_command_gap_ms=20, csim_refuses_manage_channel=True)
    options = demo.StackOptions(
        fast_hashing=True, sim_cost=None, habits=habits,
        retry=sim_mod.RetryPolicy(max_attempts=4, base_s=1, cap_s=2, watchdog_s=10))

    async def main() -> tuple[object, Habits, bytes, int]:
        async with demo.Stack(options) as stack:
            outcome = await stack.provision()
            return outcome, stack.modem.habits, outcome.at_sent, stack.modem.core.early_commands

    outcome, seen_habits, at_sent, early = asyncio.run(main())
    assert seen_habits is habits
    assert early == 0  # the firmware waits its 20 ms (MKRGSM's pacing)
    assert outcome.ok, (outcome.name, outcome.detail)  # type: ignore[attr-defined]
    assert outcome.config == demo.DEMO_CONFIG.encode()  # type: ignore[attr-defined]
    assert b'AT+CSIM=10,"0070000001"' in at_sent  # tried, refused
    assert b"AT+CCHO=" in at_sent and b"AT+CGLA=" in at_sent
