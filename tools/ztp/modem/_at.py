"""AT command interpreter of the virtual SARA-U201: the DCE side of ITU-T V.250 / 3GPP TS 27.007.

Sans-I/O: bytes from the host go in with ``receive_data(data, now_ms)``; ``next_event()`` runs
the buffered command lines and returns an event when the driver must do something the core
cannot (talk to the SIM, reboot), else ``NEED_DATA``; ``data_to_send()`` returns the bytes for
the host (echo, information text, result codes, URCs). Registration progress is a deadline:
``timer()`` / ``handle_timer(now_ms)``.

Abbreviations: DS = u-blox SARA-U2 AT commands manual (UBX-13002752), SIM = SARA-G3/U2
system integration manual (UBX-13000995; see ``_habits``), TE = the host (terminal
equipment), MT = the modem, URC = unsolicited result code, CME = mobile equipment error.

Theory of operation
-------------------
Input is a stream of bytes split anywhere. Characters before ``AT`` are ignored (V.250 §5.2.1);
a line ends at S3 (CR); backspace (S5) edits; a line longer than ``max_line`` is answered with
ERROR at its end. With echo on (``ATE1``, the default), every byte is echoed as it is consumed.
A line holds basic commands (``E0``, ``&K3``) and extended ones (``+CMEE=2``) separated by
``;``; they run in order and one final result code ends the line (first error wins).

``AT+CSIM``, ``AT+CCHO``, ``AT+CGLA`` and ``AT+CCHC`` need the card. Each runs a UICC
procedure (``_uicc``: one APDU for +CSIM/+CGLA, MANAGE CHANNEL + SELECT [+ GET RESPONSE] for
+CCHO); for every APDU the core returns ``CardCommand(apdu)`` and stops consuming input until
the driver calls ``card_answered(response)`` (response data + SW1 SW2) or ``card_failed(cme)``.
+CSIM answers are passed through unchanged (61xx/6Cxx/91xx are the host's business) unless
``Habits`` says otherwise. URCs raised while a command line runs are held back and sent after
its final result code, so they never split a reply.

Hardware flow control (DS &K; SIM §1.9.1.4 table 11): with ``&K3`` (the default) output is
held while the DTE's RTS is off (``set_rts(False, now_ms)``) and released when RTS comes on or
``AT&K0`` turns flow control off; ``data_to_send()`` returns nothing meanwhile. Input is still
read and executed. Command pacing (DS §2.2.5.1): with ``Habits.min_command_gap_ms`` a line
whose "A" arrives sooner than that after the last final result code, information text or URC
the DTE could see is ignored or answered ERROR (``Habits.early_command``); one millisecond tick
is forgiven for the two sides' clocks. Echo does not count as output for the gap.

Layout: ``AtCore`` (here) runs command lines, holds the output and the registration timer and
turns card work into events; the line discipline and pacing are ``_at_line.LineReader``; the
V.250 parsing is ``_at_syntax``; the commands are tables of handlers, one module per group
(``_at_general``, ``_at_radio``, ``_at_sim``), each handed the core as an
``_at_state.CommandContext``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ztp.modem._at_general import GENERAL_COMMANDS, IPR_RATES
from ztp.modem._at_line import LINE_REFUSED, LineReader
from ztp.modem._at_radio import RADIO_COMMANDS, cgreg_fields, creg_fields
from ztp.modem._at_sim import SIM_COMMANDS, CardSession, NeedsCard
from ztp.modem._at_state import (
    Handler,
    ModemIdentity,
    NetworkConditions,
    Registration,
    Settings,
)
from ztp.modem._at_syntax import CommandError, CommandSyntaxError, split_commands
from ztp.modem._cme import CME_TEXT, CmeError
from ztp.modem._habits import Habits
from ztp.modem._uicc import Procedure, UiccAccess

__all__ = [
    "NEED_DATA",
    "AtCore",
    "CardCommand",
    "RebootRequest",
]

log = logging.getLogger(__name__)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class CardCommand:
    """A UICC access command (+CSIM, +CGLA, +CCHO, +CCHC) wants ``apdu`` sent to the card;
    answer with ``card_answered`` (or ``card_failed``)."""

    apdu: bytes


@dataclass(frozen=True)
class RebootRequest:
    """AT+CFUN=15/16: the final result code is already queued; reboot the modem now.

    ``reset_sim``: 15 also resets the SIM (DS +CFUN: "silent reset (with detach from network
    and saving of NVM parameters), with reset of the SIM card").
    """

    reset_sim: bool


@dataclass
class _Pending:
    """A command line being executed: what is left and what was answered so far."""

    commands: list[tuple[bytes, bytes, bytes]]  # (name, kind, args)
    out: list[bytes] = field(default_factory=list)


class AtCore:
    """The modem's AT interpreter (sans-I/O).

    Args:
        now_ms: current time; the modem powers up at this instant (radio on, registration
            starts, the greeting is queued if set).
        identity: strings the identification commands print.
        network: radio network conditions (see ``NetworkConditions``).
        max_line: longest accepted command line in characters after ``AT`` (longer: ERROR).
        greeting: DS +CSGT greeting text sent when the modem has booted (None: none, the
            factory default).
        ipr: initial +IPR value (0 = autobauding).
        habits: real-module habits (``Habits``): initial RTS, command pacing, UICC access.

    The DTE's RTS line (``rts``) is an input like the bytes: ``set_rts(asserted, now_ms)``.
    It survives reboots (it is the DTE's wire); flow control (&K) does not.
    """

    def __init__(
        self,
        now_ms: int,
        *,
        identity: ModemIdentity | None = None,
        network: NetworkConditions | None = None,
        max_line: int = 600,
        greeting: str | None = None,
        ipr: int = 0,
        habits: Habits | None = None,
    ) -> None:
        if ipr not in IPR_RATES:
            raise ValueError(f"ipr must be one of {IPR_RATES}, got {ipr}")
        self.habits = habits or Habits()
        self.uicc = UiccAccess(self.habits)
        self.rts = self.habits.rts_asserted
        self.identity = identity or ModemIdentity()
        self._network = network or NetworkConditions()
        self.greeting = greeting
        self.ipr = ipr
        self._reader = LineReader(self.habits, max_line)
        self._out = bytearray()
        self._held_urcs: list[bytes] = []
        self._pending: _Pending | None = None
        self._reboot_after: bool | None = None
        self._now_ms = now_ms
        self._waiting_card = False
        self._events: list[CardCommand | RebootRequest] = []
        self._card = CardSession()  # the UICC procedure of the running command
        # Pacing (Habits.min_command_gap_ms): when the DTE last could see a response or URC.
        self._last_response_ms: int | None = None
        self._response_held = False  # a response is waiting behind RTS
        # SIM status, set by the driver after it initialised the card.
        self.iccid: str | None = None
        self.sim_present = False
        self.sim_busy_commands = 0  # fault knob: next N SIM commands answer +CME ERROR: 14
        # after a reboot the SIM commands answer +CME ERROR: 14 (SIM busy) until this time
        # (set by the driver: LatencyModel.reboot_ms + sim_init_ms)
        self.sim_ready_at_ms = 0
        self.commands_seen = 0
        self.output_dropped = 0  # bytes lost because the held output was full
        self._power_on(now_ms)

    # ------------------------------------------------------------------ lifecycle
    def _power_on(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self.settings = Settings()
        self.fun = 1
        self._cs = Registration.NOT_SEARCHING
        self._ps = Registration.NOT_SEARCHING
        self._reg_deadline: int | None = None
        self._reader.reset()
        self._pending = None
        self._waiting_card = False
        self._card.close()
        self.uicc.reset()
        self._events.clear()
        self._held_urcs.clear()
        self.radio_on(now_ms)
        if self.greeting is not None:
            self._write(b"\r\n" + self.greeting.encode() + b"\r\n")
            self._mark_response()

    def reboot(self, now_ms: int) -> None:
        """The modem restarts: settings back to defaults, line input, output not yet sent,
        pending work and logical channel sessions lost.

        The driver closes the SIM Toolkit channels and re-initialises the card itself.
        """
        log.info("AT core: reboot")
        self._out.clear()
        self._power_on(now_ms)

    def set_habits(self, habits: Habits) -> None:
        """Change the habits now (the RTS line keeps its state; see ``set_rts``)."""
        self.habits = habits
        self.uicc.habits = habits
        self._reader.habits = habits

    def set_network(self, network: NetworkConditions, now_ms: int) -> None:
        """Change the radio conditions (fault knob): registration is redone from searching."""
        self._network = network
        if self.fun == 1:
            self.radio_on(now_ms)

    @property
    def network(self) -> NetworkConditions:
        return self._network

    # ------------------------------------------------------------------ for the handlers
    # (``_at_state.CommandContext``: what the command handlers may read and change)
    @property
    def now_ms(self) -> int:
        """The time the current command runs at."""
        return self._now_ms

    @property
    def cs_stat(self) -> Registration:
        """+CREG <stat>: circuit-switched registration."""
        return self._cs

    @property
    def ps_stat(self) -> Registration:
        """+CGREG <stat>: packet-domain registration."""
        return self._ps

    def request_reboot(self, reset_sim: bool) -> None:
        """AT+CFUN=15/16: reboot once this command has answered OK (``RebootRequest``)."""
        self._reboot_after = reset_sim

    def radio_on(self, now_ms: int) -> None:
        """Radio on (power-up, AT+CFUN=1): searching, registered after the delay."""
        self._set_registration(Registration.SEARCHING, Registration.SEARCHING)
        self._reg_deadline = now_ms + self._network.registration_delay_ms
        self.handle_timer(now_ms)

    def radio_off(self) -> None:
        """Radio off (AT+CFUN=0/4): not searching, no registration deadline."""
        self._reg_deadline = None
        self._set_registration(Registration.NOT_SEARCHING, Registration.NOT_SEARCHING)

    @property
    def packet_attached(self) -> bool:
        """True when the packet domain is registered: the data bearer (BIP) can work."""
        return self._ps in (Registration.HOME, Registration.ROAMING)

    def timer(self) -> int | None:
        """The next deadline in ms (registration progress), or None."""
        return self._reg_deadline

    def handle_timer(self, now_ms: int) -> None:
        """Advance the clock to ``now_ms``; fire the registration deadline once it passed."""
        self._now_ms = max(self._now_ms, now_ms)
        if self._reg_deadline is None or now_ms < self._reg_deadline:
            return
        self._reg_deadline = None
        final = self._network.registration
        cs = final if self._network.circuit_switched or not self._network.registered \
            else Registration.SEARCHING
        self._set_registration(cs, final)

    def _set_registration(self, cs: Registration, ps: Registration) -> None:
        if cs != self._cs:
            log.info("AT core: +CREG stat %d -> %d", self._cs, cs)
            self._cs = cs
            if self.settings.creg_n:
                self._urc(b"+CREG: " + creg_fields(self._network, cs, self.settings.creg_n))
        if ps != self._ps:
            log.info("AT core: +CGREG stat %d -> %d", self._ps, ps)
            self._ps = ps
            if self.settings.cgreg_n:
                self._urc(b"+CGREG: " + cgreg_fields(self._network, ps, self.settings.cgreg_n))

    # ------------------------------------------------------------------ I/O
    def receive_data(self, data: bytes, now_ms: int) -> None:
        """Buffer bytes from the host (any split) received at ``now_ms``.

        Processing happens in ``next_event``; the time is what commands run at.
        """
        self._reader.receive(data, now_ms)
        self.handle_timer(now_ms)

    def data_to_send(self) -> bytes:
        """Bytes for the host: echo, replies, URCs. Nothing while RTS holds the output."""
        if self.output_held:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    @property
    def output_held(self) -> bool:
        """True while hardware flow control (&K3) holds the output: the DTE's RTS is off."""
        return self.settings.flow_control == 3 and not self.rts

    def set_rts(self, asserted: bool, now_ms: int) -> None:
        """The DTE's RTS line changed (True: ON, the DTE can take data) at ``now_ms``.

        With &K3, output produced while RTS is off waits in the modem (up to
        ``Habits.max_held_output`` bytes) and is released when RTS comes on (SIM §1.9.1.4
        table 11: "Data sent by the module is buffered by the module and will be correctly
        received by the DTE when it is ready to receive data").
        """
        self._now_ms = max(self._now_ms, now_ms)
        if asserted != self.rts:
            log.info("AT core: RTS %s", "on" if asserted else "off")
        was_held = self.output_held
        self.rts = asserted
        if was_held and not self.output_held:
            self.output_released()

    def output_released(self) -> None:
        """Held output can flow now: for pacing, the DTE sees held responses only now."""
        if self._response_held:
            self._response_held = False
            self._last_response_ms = self._now_ms

    def _write(self, data: bytes) -> None:
        if self.output_held and len(self._out) + len(data) > self.habits.max_held_output:
            self.output_dropped += len(data)
            log.warning("AT core: output held by RTS is full, %d bytes dropped", len(data))
            return
        self._out += data

    def _mark_response(self) -> None:
        """A final result code, information text or URC was just written (DS §2.2.5.1 counts
        the gap from these)."""
        if self.output_held:
            self._response_held = True
        else:
            self._last_response_ms = self._now_ms

    def inject_urc(self, text: str) -> None:
        """Queue an unsolicited result code (held back while a command line runs)."""
        self._urc(text.encode())

    def _urc(self, body: bytes) -> None:
        frame = b"\r\n" + body + b"\r\n"
        if self._pending is not None:
            self._held_urcs.append(frame)
        else:
            self._write(frame)
            self._mark_response()

    def next_event(self) -> CardCommand | RebootRequest | _NeedData:
        """Run buffered input; return what the driver must do next, or ``NEED_DATA``.

        Returns ``CardCommand`` (send the APDU, then ``card_answered``/``card_failed``; no
        input is consumed until then), ``RebootRequest`` or ``NEED_DATA``.
        """
        while True:
            if self._events:
                return self._events.pop(0)
            if self._waiting_card or not self._reader.has_input:
                return NEED_DATA
            self._consume(*self._reader.next_byte())

    def card_answered(self, response: bytes, now_ms: int | None = None) -> None:
        """The card's answer (data + SW1 SW2) to the last ``CardCommand``, at ``now_ms``."""
        if not self._waiting_card or self._pending is None:
            raise RuntimeError("card_answered() without a pending CardCommand")
        if now_ms is not None:
            self._now_ms = max(self._now_ms, now_ms)
        if len(response) < 2 or len(response) > 258:
            self.card_failed(CmeError.SIM_FAILURE)
            return
        self._waiting_card = False
        try:
            lines = self._card.advance(response)
        except NeedsCard as need:
            self._waiting_card = True
            self._events.append(CardCommand(need.apdu))
            return
        except CommandError as err:
            self._finish(self._error(err.code))
            return
        self._pending.out.extend(lines)
        self._run_pending()

    def card_failed(self, code: CmeError, now_ms: int | None = None) -> None:
        """The card could not answer the last ``CardCommand`` (e.g. SIM_FAILURE, SIM_BUSY)."""
        if not self._waiting_card or self._pending is None:
            raise RuntimeError("card_failed() without a pending CardCommand")
        if now_ms is not None:
            self._now_ms = max(self._now_ms, now_ms)
        self._waiting_card = False
        self._card.close()
        self._finish(self._error(code))

    # ------------------------------------------------------------------ UICC procedures
    def begin_card_procedure(
        self, proc: Procedure[Any], done: Callable[[Any], list[bytes]]
    ) -> list[bytes]:
        """Start a UICC procedure; ``done(result)`` gives the information text lines.

        Raises ``NeedsCard`` for its first APDU (the handler lets it through).
        """
        return self._card.begin(proc, done)

    # ------------------------------------------------------------------ line discipline
    def _consume(self, byte: int, at_ms: int) -> None:
        echo, line = self._reader.consume(byte, at_ms, self._last_response_ms)
        if echo and self.settings.echo:
            self._write(bytes((byte,)))
        if line is LINE_REFUSED:
            self._emit_final(b"ERROR")
        elif isinstance(line, bytes):
            self._start_line(line)

    @property
    def early_commands(self) -> int:
        """Lines refused for starting inside ``Habits.min_command_gap_ms``."""
        return self._reader.early_commands

    def _start_line(self, body: bytes) -> None:
        self.commands_seen += 1
        try:
            commands = split_commands(body)
        except CommandSyntaxError:
            log.info("AT core: syntax error in %r", body[:40])
            self._emit_final(b"ERROR")
            return
        self._pending = _Pending(commands)
        self._run_pending()

    def _run_pending(self) -> None:
        pending = self._pending
        assert pending is not None
        while pending.commands:
            name, kind, args = pending.commands.pop(0)
            try:
                pending.out.extend(self._execute(name, kind, args))
            except NeedsCard as need:
                self._waiting_card = True
                self._events.append(CardCommand(need.apdu))
                return
            except CommandSyntaxError:
                self._finish(b"ERROR")
                return
            except CommandError as err:
                self._finish(self._error(err.code))
                return
            if self._reboot_after is not None:
                reset_sim = self._reboot_after
                self._reboot_after = None
                self._finish(b"OK")
                self._events.append(RebootRequest(reset_sim=reset_sim))
                return
        self._finish(b"OK")

    def _finish(self, final: bytes) -> None:
        pending = self._pending
        self._pending = None
        self._card.close()
        for text in pending.out if pending else ():
            self._write(b"\r\n" + text + b"\r\n")
        self._emit_final(final)
        for urc in self._held_urcs:
            self._write(urc)
        self._held_urcs.clear()

    def _emit_final(self, final: bytes) -> None:
        self._write(b"\r\n" + final + b"\r\n")
        self._mark_response()

    def _error(self, code: CmeError) -> bytes:
        # 27.007 §9.1 +CMEE: 0 plain ERROR, 1 numeric, 2 verbose.
        if self.settings.cmee == 1:
            return b"+CME ERROR: %d" % code
        if self.settings.cmee == 2:
            return b"+CME ERROR: " + CME_TEXT[code].encode()
        return b"ERROR"

    # ------------------------------------------------------------------ commands
    def _execute(self, name: bytes, kind: bytes, args: bytes) -> list[bytes]:
        """Run one command. kind: b"" action, b"?" read, b"=?" test, b"=" set."""
        handler = _HANDLERS.get(name)
        if handler is None:
            # Unknown or unsupported (AT+CEREG: SARA-U201 has no LTE).
            log.info("AT core: unsupported command %r", name)
            if name.startswith(b"+"):
                raise CommandError(CmeError.OPERATION_NOT_SUPPORTED)
            raise CommandSyntaxError()
        return handler(self, kind, args)


# The command table (V.250 names, upper case): one group per module.
_HANDLERS: Final[dict[bytes, Handler]] = {**GENERAL_COMMANDS, **RADIO_COMMANDS, **SIM_COMMANDS}
