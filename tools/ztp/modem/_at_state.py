"""What the AT command handlers work on: the modem's identity, the radio conditions, the
per-boot settings, and ``CommandContext``, the part of the AT core a handler may touch.

The handlers (``_at_general``, ``_at_radio``, ``_at_sim``) are plain functions
``handler(core, kind, args) -> information text lines``; they are handed the core as a
``CommandContext`` so they see only this surface and never the line discipline or the output
buffer. DS = u-blox SARA-U2 AT commands manual (UBX-13002752).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ztp.modem._habits import Habits
from ztp.modem._uicc import Procedure, UiccAccess

__all__ = [
    "CommandContext",
    "Handler",
    "ModemIdentity",
    "NetworkConditions",
    "Registration",
    "Settings",
]


class Registration(enum.IntEnum):
    """<stat> of +CREG / +CGREG (3GPP TS 27.007 §7.2, §10.1.20)."""

    NOT_SEARCHING = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5


@dataclass(frozen=True)
class NetworkConditions:
    """What the radio network does with this modem (a fault knob as much as a setting).

    Args:
        registration: the final <stat> after ``registration_delay_ms``: HOME or ROAMING
            (registered), DENIED, or SEARCHING (no network: the modem keeps searching).
        registration_delay_ms: from radio on (power-up, AT+CFUN=1) to the final <stat>.
        circuit_switched: False models a data-only IoT SIM: +CREG stays SEARCHING while
            +CGREG (packet domain) registers.
        lac, ci, rac: location area code (2 bytes), cell id (UTRAN: 4 bytes), routing area
            code (1 byte), reported with <n>=2.
    """

    registration: Registration = Registration.HOME
    registration_delay_ms: int = 0
    circuit_switched: bool = True
    lac: int = 0x4E54
    ci: int = 0x0D3744A5
    rac: int = 0x14

    def __post_init__(self) -> None:
        if self.registration not in (
            Registration.HOME, Registration.ROAMING, Registration.DENIED, Registration.SEARCHING
        ):
            raise ValueError(f"registration must be HOME, ROAMING, DENIED or SEARCHING, "
                             f"got {self.registration!r}")
        if self.registration_delay_ms < 0:
            raise ValueError("registration_delay_ms must be >= 0")
        if not (0 <= self.lac <= 0xFFFF and 0 <= self.ci <= 0xFFFFFFFF and 0 <= self.rac <= 0xFF):
            raise ValueError("lac, ci, rac out of range (2, 4 and 1 bytes)")

    @property
    def registered(self) -> bool:
        return self.registration in (Registration.HOME, Registration.ROAMING)


@dataclass(frozen=True)
class ModemIdentity:
    """Identification strings (DS +CGMI, +CGMM, +CGMR, +CGSN, I)."""

    manufacturer: str = "u-blox"
    model: str = "SARA-U201"
    revision: str = "23.60"
    imei: str = "357520070123452"  # TAC of a SARA-U2 style module; Luhn-valid
    type_number: str = "SARA-U201-63B-00"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9]{15}", self.imei):
            raise ValueError(f"IMEI must be 15 digits, got {self.imei!r}")


@dataclass
class Settings:
    """Per-boot settings (V.250 / 27.007 parameters); AT&F and reboots restore the defaults."""

    echo: bool = True
    cmee: int = 0
    creg_n: int = 0
    cgreg_n: int = 0
    flow_control: int = 3  # &K3: RTS/CTS (DS &K; the MKR wires RTS/CTS)


class CommandContext(Protocol):
    """The AT core as a command handler sees it (``_at.AtCore`` implements it)."""

    settings: Settings
    identity: ModemIdentity
    habits: Habits
    uicc: UiccAccess
    ipr: int
    fun: int
    iccid: str | None
    sim_present: bool
    sim_busy_commands: int
    sim_ready_at_ms: int

    @property
    def network(self) -> NetworkConditions: ...

    @property
    def now_ms(self) -> int: ...

    @property
    def cs_stat(self) -> Registration: ...

    @property
    def ps_stat(self) -> Registration: ...

    @property
    def output_held(self) -> bool: ...

    def output_released(self) -> None: ...

    def radio_on(self, now_ms: int) -> None: ...

    def radio_off(self) -> None: ...

    def request_reboot(self, reset_sim: bool) -> None: ...

    def begin_card_procedure(
        self, proc: Procedure[Any], done: Callable[[Any], list[bytes]]
    ) -> list[bytes]: ...


# handler(core, kind, args): kind is b"" action, b"?" read, b"=?" test, b"=" set; returns the
# information text lines; raises _at_syntax.CommandSyntaxError / CommandError.
Handler = Callable[[CommandContext, bytes, bytes], list[bytes]]
