"""Closing the modem ends its tasks, whatever they were doing: a stack torn down right after
the firmware's last command must not wait for the modem's next timer.

The e2e test ``test_modem_garbage_and_reboot_mid_flow`` hung in teardown about half the time:
the toolkit loop had just been woken (the card answered the firmware's last APDU) when
``close`` cancelled it, and ``asyncio.wait_for`` on Python 3.11 returns the finished inner
wait instead of raising the cancellation (CPython gh-86296). The loop then slept until its
next deadline: the applet's 60 s timer. Here the wake and the cancellation land in the same
loop iteration on purpose.
"""

from __future__ import annotations

import asyncio

from ztp.modem import LatencyModel, VirtualModem

from .cards import BipCard
from .test_modem import run


async def _close_within(modem: VirtualModem, limit_s: float) -> None:
    """``modem.close()`` returns within ``limit_s`` (measured: a cancelled close may return
    normally, so a timeout alone would not tell). The bound is far from both outcomes: a
    close takes well under a second even on a loaded machine; the defect waits for the
    600 s registration deadline, cut here at ``2 * limit_s``."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(modem.close(), limit_s * 2)
    assert loop.time() - t0 < limit_s


def test_close_right_after_a_wake_ends_the_toolkit_loop() -> None:
    async def main() -> None:
        # registration 600 s away: the toolkit loop sleeps with a deadline (a timed wait)
        modem = VirtualModem(BipCard(("127.0.0.1", 9)),
                             latency=LatencyModel(registration_delay_ms=600_000))
        await modem.start()
        try:
            await asyncio.sleep(0.05)  # the loop is in its timed wait
            assert modem.core.timer() is not None
            modem.set_faults(modem.faults)  # wakes the toolkit loop ...
        finally:
            # ... and it is cancelled before it runs again: it must end, not sleep 600 s
            await _close_within(modem, 10.0)

    run(main)


def test_close_in_a_timed_wait_ends_the_toolkit_loop() -> None:
    async def main() -> None:
        modem = VirtualModem(BipCard(("127.0.0.1", 9)),
                             latency=LatencyModel(registration_delay_ms=600_000))
        await modem.start()
        await asyncio.sleep(0.05)
        await _close_within(modem, 10.0)

    run(main)
