"""How closely the virtual SARA-U201 imitates the real module's less forgiving habits.

Sources (abbreviations used across ``ztp.modem``):
  DS  = u-blox SARA-U2 AT commands manual (u-blox cellular modules AT commands manual,
        UBX-13002752); §2.2.5.1 as quoted in arduino-libraries/MKRGSM PR #49 (2018).
  SIM = SARA-G3 / SARA-U2 series system integration manual, UBX-13000995 R26:
        §1.6.1.1 table 8, §1.9.1.2 table 10, §1.9.1.3 (RTS), §1.9.1.4 table 11.
  DSH = SARA-U2 series data sheet, UBX-13005287, RESET_N (p. 30, as quoted in
        arduino-libraries/MKRGSM issue #136).
  MKRGSM = arduino-libraries/MKRGSM src/Modem.cpp (ModemClass::begin, ModemClass::send).
  TS 27.007 = 3GPP TS 27.007 §8.17 +CSIM, §8.43 +CGLA, §8.45 +CCHO, §8.46 +CCHC.

The defaults keep the modem as kind as it was before these knobs existed, except where a
faithful default costs nothing (RTS asserted on a pseudo-terminal, a 50 ms minimum RESET_N
pulse, +CCHO/+CCHC/+CGLA available). ``Habits.strict()`` turns the unforgiving ones on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ztp.modem._cme import CmeError

__all__ = ["EarlyCommand", "Habits"]


class EarlyCommand(enum.Enum):
    """What the modem does with a command line that starts inside ``min_command_gap_ms``."""

    IGNORE = "ignore"  # lost: no echo, no result code (the DTE times out and retries)
    ERROR = "error"  # echoed, then answered ERROR without being executed


@dataclass(frozen=True)
class Habits:
    """Real-module habits (change them live with ``VirtualModem.set_habits``).

    Args:
        rts_asserted: the DTE's RTS line at start (V.24 circuit 105/133 ON = the DTE can take
            data; on the 1.8 V UART that is the LOW level). A pseudo-terminal or TCP socket
            has no RTS line, so the default is asserted. A real SARA-U2 whose RTS input is
            not driven sees OFF (SIM §1.9.1.3: internal pull-up), so ``False`` models a board
            whose MCU leaves GSM_RTS floating. Change it with ``modem.set_rts()``.
        min_command_gap_ms: a command line whose "AT" starts less than this many ms after the
            modem's last final result code, information text or URC is not executed (DS
            §2.2.5.1 recommends the DTE wait "at least 20 ms"; MKRGSM waits 20 ms). 0 = off.
        early_command: what happens to such a line (``EarlyCommand``).
        min_reset_pulse_ms: shortest RESET_N low pulse (GSM_RESETN high on the MKR) that
            resets the module (DSH: "LOW level for 50 ms (minimum)"); shorter pulses leave
            the modem as it was (only what was on the UART meanwhile is lost).
        logical_channel_commands: AT+CCHO / AT+CCHC / AT+CGLA available (TS 27.007 §8.43-8.46).
            False: they answer like any unsupported command.
        ccho_prefix: AT+CCHO answers "+CCHO: <sessionid>"; False: the bare "<sessionid>"
            line of the TS 27.007 §8.45 table, as some modems do.
        session_id_offset: <sessionid> = logical channel + this (TS 27.007 only promises a
            handle; a non-zero offset catches a DTE that treats the handle as the channel).
        csim_refuses_manage_channel: AT+CSIM with INS 70 (MANAGE CHANNEL) is refused with
            ``csim_refusal``; the DTE must use AT+CCHO / AT+CCHC.
        csim_refuses_get_response: AT+CSIM with INS C0 (GET RESPONSE) is refused likewise.
        csim_gets_response_itself: on AT+CSIM the modem answers 61xx itself with GET
            RESPONSE (Le = xx, the command's channel) and returns that answer instead.
        csim_refusal: the +CME ERROR of those refusals (TS 27.007 §9.2; 3 = operation not
            allowed is our guess at what a module that filters APDUs answers).
        max_held_output: bytes the modem buffers while RTS holds its output; beyond that
            new output is dropped (counted in ``AtCore.output_dropped``).
    """

    rts_asserted: bool = True
    min_command_gap_ms: int = 0
    early_command: EarlyCommand = EarlyCommand.IGNORE
    min_reset_pulse_ms: int = 50
    logical_channel_commands: bool = True
    ccho_prefix: bool = True
    session_id_offset: int = 0
    csim_refuses_manage_channel: bool = False
    csim_refuses_get_response: bool = False
    csim_gets_response_itself: bool = False
    csim_refusal: CmeError = CmeError.OPERATION_NOT_ALLOWED
    max_held_output: int = 16384

    def __post_init__(self) -> None:
        if self.min_command_gap_ms < 0 or self.min_reset_pulse_ms < 0:
            raise ValueError("min_command_gap_ms and min_reset_pulse_ms must be >= 0")
        if not 0 <= self.session_id_offset <= 0xFFFF:
            raise ValueError("session_id_offset must be 0..65535")
        if self.max_held_output <= 0:
            raise ValueError("max_held_output must be positive")
        object.__setattr__(self, "early_command", EarlyCommand(self.early_command))
        object.__setattr__(self, "csim_refusal", CmeError(self.csim_refusal))

    @classmethod
    def strict(cls, **changes: object) -> Habits:
        """The module as on a MKR GSM 1400 whose MCU does nothing special: RTS not driven
        (OFF: output held until the DTE asserts RTS or sends AT&K0) and commands paced at
        20 ms (early ones lost). ``changes`` override single fields."""
        fields: dict[str, object] = {"rts_asserted": False, "min_command_gap_ms": 20}
        fields.update(changes)
        return cls(**fields)  # type: ignore[arg-type]
