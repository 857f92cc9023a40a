"""The SARA-U201's RESET_N input as driven by the MKR GSM 1400's GSM_RESETN pin (sans-I/O).

On the MKR the MCU pin drives RESET_N through a transistor, so the levels are inverted: MCU pin
high = RESET_N low = module held in reset. SARA-U2 data sheet (UBX-13005287, RESET_N, p. 30):
"RESET_N line has to be set to the LOW level for 50 ms (minimum)" for an abrupt hardware reset;
system integration manual (UBX-13000995 §1.6.1.1 table 8): "RESET_N pin released from low
level" is a switch-on event. MKRGSM's ModemClass::begin pulses the pin high 150 us, low 3 ms,
high 600 ms, then low: the 150 us pulse is below the minimum, the 600 ms one resets.

Model: while the line is high the module is deaf and silent (``HOLD``). Once it has been high
for ``min_pulse_ms`` the module is in reset (``RESET``: links dropped, SIM unpowered, AT state
lost). Released after that, it boots (``BOOT``: as a reboot, boot time and greeting); released
earlier, the pulse is ignored (``RESUME``) and only what crossed the UART meanwhile is lost.
Behaviour below the data sheet's minimum is not specified; ignoring it is our choice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ResetAction", "ResetLine", "ResetPulse"]


class ResetAction(enum.Enum):
    HOLD = "hold"  # line went high: stop listening and talking
    RESET = "reset"  # held for the minimum: the module is in reset
    RESUME = "resume"  # released too early: carry on as before
    BOOT = "boot"  # released after a reset: power up


@dataclass(frozen=True)
class ResetPulse:
    """One high pulse on GSM_RESETN: when it started, how long it lasted, whether it reset."""

    start_ms: int
    held_ms: int
    effective: bool


class ResetLine:
    """GSM_RESETN seen from the module.

    Args:
        min_pulse_ms: shortest high pulse that resets the module (data sheet: 50 ms).

    ``set(high, now_ms)`` and ``handle_timer(now_ms)`` return the actions the driver carries
    out, in order; ``timer()`` is the instant the pulse becomes a reset.
    """

    def __init__(self, min_pulse_ms: int = 50) -> None:
        if min_pulse_ms < 0:
            raise ValueError("min_pulse_ms must be >= 0")
        self.min_pulse_ms = min_pulse_ms
        self.high = False
        self.in_reset = False
        self.pulses: list[ResetPulse] = []
        self._since: int | None = None

    def set(self, high: bool, now_ms: int) -> list[ResetAction]:
        """The MCU drives the pin ``high`` (True: module held in reset) at ``now_ms``."""
        if high == self.high:
            return []
        if high:
            self.high = True
            self._since = now_ms
            return [ResetAction.HOLD, *self.handle_timer(now_ms)]
        assert self._since is not None
        actions = self.handle_timer(now_ms)  # a deadline that passed unnoticed still counts
        self.high = False
        effective = self.in_reset
        self.pulses.append(ResetPulse(self._since, now_ms - self._since, effective))
        self._since = None
        self.in_reset = False
        return [*actions, ResetAction.BOOT if effective else ResetAction.RESUME]

    def timer(self) -> int | None:
        """When the current pulse turns into a reset, or None."""
        if not self.high or self.in_reset or self._since is None:
            return None
        return self._since + self.min_pulse_ms

    def handle_timer(self, now_ms: int) -> list[ResetAction]:
        deadline = self.timer()
        if deadline is None or now_ms < deadline:
            return []
        self.in_reset = True
        return [ResetAction.RESET]
