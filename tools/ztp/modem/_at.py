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
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from ztp.modem._cme import CME_TEXT, CmeError
from ztp.modem._habits import EarlyCommand, Habits
from ztp.modem._uicc import Procedure, UiccAccess, UiccError

__all__ = [
    "NEED_DATA",
    "AtCore",
    "CardCommand",
    "CmeError",
    "ModemIdentity",
    "NetworkConditions",
    "RebootRequest",
    "Registration",
]

log = logging.getLogger(__name__)

CR: Final = 0x0D  # S3, V.250 §6.2.1
LF: Final = 0x0A  # S4
BS: Final = 0x08  # S5

class _Syntax(Exception):
    """A malformed command: plain ERROR whatever +CMEE says (V.250 §5.7.1)."""


class _Cme(Exception):
    def __init__(self, code: CmeError) -> None:
        super().__init__(code)
        self.code = code


class _NeedsCard(Exception):
    def __init__(self, apdu: bytes) -> None:
        super().__init__()
        self.apdu = apdu


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


# Packet-domain access technology for <AcT> (27.007 §7.3): 2 = UTRAN. SARA-U201 is 2G/3G only.
_ACT_UTRAN: Final = 2
# DS +IPR: supported fixed rates; 0 = autobauding (factory default).
_IPR_RATES: Final = (0, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800,
                     921600)
# 27.007 §8.17: <length> counts hex characters; the longest command APDU is 5 + 255 + 1 bytes.
_CSIM_MAX_HEX: Final = 2 * 261

_EXT_NAME = re.compile(rb"\+[A-Z0-9!%\-./:_]+")
_BASIC = re.compile(rb"(&[A-Z]|[A-Z])([0-9]*)")


@dataclass
class _Settings:
    """Per-boot settings (V.250 / 27.007 parameters); AT&F and reboots restore the defaults."""

    echo: bool = True
    cmee: int = 0
    creg_n: int = 0
    cgreg_n: int = 0
    flow_control: int = 3  # &K3: RTS/CTS (DS &K; the MKR wires RTS/CTS)


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
        if ipr not in _IPR_RATES:
            raise ValueError(f"ipr must be one of {_IPR_RATES}, got {ipr}")
        self.habits = habits or Habits()
        self.uicc = UiccAccess(self.habits)
        self.rts = self.habits.rts_asserted
        self.identity = identity or ModemIdentity()
        self._network = network or NetworkConditions()
        self.max_line = max_line
        self.greeting = greeting
        self.ipr = ipr
        self._in = bytearray()
        self._out = bytearray()
        self._held_urcs: list[bytes] = []
        self._line = bytearray()
        self._line_started = False  # "AT" seen
        self._line_overflow = False
        self._prefix_a = False  # last ignored char was 'A'
        self._pending: _Pending | None = None
        self._reboot_after: bool | None = None
        self._now_ms = now_ms
        self._waiting_card = False
        self._events: list[CardCommand | RebootRequest] = []
        self._procedure: tuple[Procedure[Any], Callable[[Any], list[bytes]]] | None = None
        # Arrival time of the buffered input: (absolute end offset of a chunk, its now_ms).
        self._in_marks: list[tuple[int, int]] = []
        self._in_total = 0  # bytes ever received
        self._in_done = 0  # bytes ever consumed (or dropped)
        # Pacing (Habits.min_command_gap_ms): when the DTE last could see a response or URC.
        self._last_response_ms: int | None = None
        self._response_held = False  # a response is waiting behind RTS
        self._a_ms: int | None = None  # arrival of the 'A' that may start a line
        self._line_early = False
        self._discarding = False  # dropping an early line up to its CR (EarlyCommand.IGNORE)
        # SIM status, set by the driver after it initialised the card.
        self.iccid: str | None = None
        self.sim_present = False
        self.sim_busy_commands = 0  # fault knob: next N SIM commands answer +CME ERROR: 14
        self.commands_seen = 0
        self.early_commands = 0  # lines refused for starting inside min_command_gap_ms
        self.output_dropped = 0  # bytes lost because the held output was full
        self._power_on(now_ms)

    # ------------------------------------------------------------------ lifecycle
    def _power_on(self, now_ms: int) -> None:
        self._now_ms = now_ms
        self.settings = _Settings()
        self.fun = 1
        self._cs = Registration.NOT_SEARCHING
        self._ps = Registration.NOT_SEARCHING
        self._reg_deadline: int | None = None
        self._in.clear()
        self._in_marks.clear()
        self._in_done = self._in_total
        self._line.clear()
        self._line_started = False
        self._line_overflow = False
        self._prefix_a = False
        self._a_ms = None
        self._line_early = False
        self._discarding = False
        self._pending = None
        self._waiting_card = False
        self._close_procedure()
        self.uicc.reset()
        self._events.clear()
        self._held_urcs.clear()
        self._radio_on(now_ms)
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

    def set_network(self, network: NetworkConditions, now_ms: int) -> None:
        """Change the radio conditions (fault knob): registration is redone from searching."""
        self._network = network
        if self.fun == 1:
            self._radio_on(now_ms)

    @property
    def network(self) -> NetworkConditions:
        return self._network

    def _radio_on(self, now_ms: int) -> None:
        self._set_registration(Registration.SEARCHING, Registration.SEARCHING)
        self._reg_deadline = now_ms + self._network.registration_delay_ms
        self.handle_timer(now_ms)

    def _radio_off(self) -> None:
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
                self._urc(b"+CREG: " + self._creg_fields(cs, self.settings.creg_n, urc=True))
        if ps != self._ps:
            log.info("AT core: +CGREG stat %d -> %d", self._ps, ps)
            self._ps = ps
            if self.settings.cgreg_n:
                self._urc(b"+CGREG: " + self._cgreg_fields(ps, self.settings.cgreg_n, urc=True))

    # ------------------------------------------------------------------ I/O
    def receive_data(self, data: bytes, now_ms: int) -> None:
        """Buffer bytes from the host (any split) received at ``now_ms``.

        Processing happens in ``next_event``; the time is what commands run at.
        """
        if data:
            self._in += data
            self._in_total += len(data)
            self._in_marks.append((self._in_total, now_ms))
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
            self._released()

    def _released(self) -> None:
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
            if self._waiting_card or not self._in:
                return NEED_DATA
            while self._in_marks[0][0] <= self._in_done:
                self._in_marks.pop(0)
            at_ms = self._in_marks[0][1]
            self._in_done += 1
            self._consume(self._in.pop(0), at_ms)

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
            lines = self._advance(response)
        except _NeedsCard as need:
            self._waiting_card = True
            self._events.append(CardCommand(need.apdu))
            return
        except _Cme as err:
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
        self._close_procedure()
        self._finish(self._error(code))

    # ------------------------------------------------------------------ UICC procedures
    def _begin(self, proc: Procedure[Any], done: Callable[[Any], list[bytes]]) -> list[bytes]:
        """Start a UICC procedure; ``done(result)`` gives the information text lines."""
        self._close_procedure()
        self._procedure = (proc, done)
        return self._advance(None)

    def _advance(self, response: bytes | None) -> list[bytes]:
        """Feed the card's answer to the running procedure (None: start it).

        Raises ``_NeedsCard`` for its next APDU, ``_Cme`` when it fails.
        """
        assert self._procedure is not None
        proc, done = self._procedure
        try:
            apdu = next(proc) if response is None else proc.send(response)
        except StopIteration as stop:
            self._procedure = None
            return done(stop.value)
        except UiccError as err:
            self._procedure = None
            log.info("AT core: %s", err)
            raise _Cme(err.code) from None
        raise _NeedsCard(apdu)

    def _close_procedure(self) -> None:
        if self._procedure is not None:
            self._procedure[0].close()
            self._procedure = None

    # ------------------------------------------------------------------ line discipline
    def _consume(self, byte: int, at_ms: int) -> None:
        if self._discarding:
            # An early line (EarlyCommand.IGNORE): lost up to and including its CR.
            if byte == CR:
                self._discarding = False
            return
        if not self._line_started and byte in (0x41, 0x61):
            self._a_ms = at_ms
            if self._early(at_ms) and self.habits.early_command is EarlyCommand.IGNORE:
                log.info("AT core: command %d ms after the last response, ignored",
                         at_ms - (self._last_response_ms or 0))
                self.early_commands += 1
                self._discarding = True
                self._prefix_a = False
                return
        if self.settings.echo:
            self._write(bytes((byte,)))
        if not self._line_started:
            # V.250 §5.2.1: characters before "AT" are ignored.
            if byte in (0x54, 0x74) and self._prefix_a:
                self._line_started = True
                self._line.clear()
                self._line_overflow = False
                self._line_early = self._a_ms is not None and self._early(self._a_ms)
            self._prefix_a = byte in (0x41, 0x61)
            return
        if byte == CR:
            self._line_started = False
            self._prefix_a = False
            line = bytes(self._line)
            self._line.clear()
            if self._line_overflow:
                self._emit_final(b"ERROR")
            elif self._line_early:
                # EarlyCommand.ERROR: DS §2.2.5.1 pacing not respected.
                log.info("AT core: command inside the %d ms gap, ERROR",
                         self.habits.min_command_gap_ms)
                self.early_commands += 1
                self._emit_final(b"ERROR")
            else:
                self._start_line(line)
        elif byte == BS:
            if self._line:
                self._line.pop()
        elif len(self._line) >= self.max_line:
            self._line_overflow = True
        else:
            self._line.append(byte)

    def _early(self, at_ms: int) -> bool:
        """A line starting at ``at_ms`` comes too soon after the last response (DS §2.2.5.1).

        Both ends count whole milliseconds on clocks of their own: a DTE that waited 20 ticks
        may have waited 19.x ms, which this clock can see as 19. So one tick is forgiven: with
        a 20 ms gap, 19 ms passes and 18 ms does not.
        """
        gap = self.habits.min_command_gap_ms
        last = self._last_response_ms
        return gap > 0 and last is not None and at_ms - last < gap - 1

    def _start_line(self, body: bytes) -> None:
        self.commands_seen += 1
        try:
            commands = _split_commands(body)
        except _Syntax:
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
            except _NeedsCard as need:
                self._waiting_card = True
                self._events.append(CardCommand(need.apdu))
                return
            except _Syntax:
                self._finish(b"ERROR")
                return
            except _Cme as err:
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
        self._close_procedure()
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
            raise _Cme(CmeError.OPERATION_NOT_SUPPORTED) if name.startswith(b"+") else _Syntax()
        return handler(self, kind, args)

    # basic commands ----------------------------------------------------------
    def _cmd_e(self, kind: bytes, args: bytes) -> list[bytes]:
        self.settings.echo = _basic_flag(args)
        return []

    def _cmd_v(self, kind: bytes, args: bytes) -> list[bytes]:
        if _basic_flag(args) is not True:
            raise _Syntax()  # only verbose result codes are modelled
        return []

    def _cmd_z(self, kind: bytes, args: bytes) -> list[bytes]:
        if args not in (b"", b"0"):
            raise _Syntax()
        self.settings = _Settings()
        return []

    def _cmd_i(self, kind: bytes, args: bytes) -> list[bytes]:
        if args in (b"", b"0"):
            return [self.identity.type_number.encode()]
        if args == b"9":
            return [(self.identity.revision + ",A01.01").encode()]
        raise _Syntax()

    def _cmd_and_k(self, kind: bytes, args: bytes) -> list[bytes]:
        # DS &K: 0 = no flow control, 3 = RTS/CTS; 4 (XON/XOFF) is not supported here.
        if args not in (b"0", b"3"):
            raise _Syntax()
        was_held = self.output_held
        self.settings.flow_control = int(args)
        if was_held and not self.output_held:
            self._released()  # &K0: "data sent by the module ... regardless of RTS" (SIM t. 11)
        return []

    def _cmd_and_f(self, kind: bytes, args: bytes) -> list[bytes]:
        if args not in (b"", b"0"):
            raise _Syntax()
        self.settings = _Settings()
        return []

    # extended commands --------------------------------------------------------
    def _cmd_cmee(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"?":
            return [b"+CMEE: %d" % self.settings.cmee]
        if kind == b"=?":
            return [b"+CMEE: (0-2)"]
        if kind == b"=":
            self.settings.cmee = _int_arg(args, 0, 2, default=0)
            return []
        raise _Syntax()

    def _cmd_cpin(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"=?":
            return []
        if kind != b"?":
            raise _Cme(CmeError.OPERATION_NOT_ALLOWED)  # no PIN on the virtual SIM
        self._require_sim()
        return [b"+CPIN: READY"]

    def _cmd_ccid(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"=?":
            return []
        if kind not in (b"", b"?"):
            raise _Syntax()
        self._require_sim()
        if self.iccid is None:
            raise _Cme(CmeError.SIM_FAILURE)
        return [b"+CCID: " + self.iccid.encode()]

    def _cmd_cgsn(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"=?":
            return []
        if kind != b"":
            raise _Syntax()
        return [self.identity.imei.encode()]

    def _cmd_cgmi(self, kind: bytes, args: bytes) -> list[bytes]:
        return self._ident(kind, self.identity.manufacturer)

    def _cmd_cgmm(self, kind: bytes, args: bytes) -> list[bytes]:
        return self._ident(kind, self.identity.model)

    def _cmd_cgmr(self, kind: bytes, args: bytes) -> list[bytes]:
        return self._ident(kind, self.identity.revision)

    def _ident(self, kind: bytes, text: str) -> list[bytes]:
        if kind == b"=?":
            return []
        if kind != b"":
            raise _Syntax()
        return [text.encode()]

    def _cmd_csq(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"=?":
            return [b"+CSQ: (0-31,99),(0-7,99)"]
        if kind != b"":
            raise _Syntax()
        rssi = 18 if self.fun == 1 and self._ps != Registration.SEARCHING else 99
        return [b"+CSQ: %d,99" % rssi]

    def _cmd_cfun(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"?":
            return [b"+CFUN: %d" % self.fun]
        if kind == b"=?":
            return [b"+CFUN: (0,1,4,15,16),(0-1)"]
        if kind != b"=":
            raise _Syntax()
        fields = _split_args(args)
        if not 1 <= len(fields) <= 2:
            raise _Syntax()
        fun = _int_field(fields[0], 0, 16)
        if len(fields) == 2:
            _int_field(fields[1], 0, 1)  # <rst>: the model always resets when asked (15/16)
        if fun in (15, 16):
            self._reboot_after = fun == 15
            return []
        if fun == 1:
            if self.fun != 1:
                self.fun = 1
                self._radio_on(self._now_ms)
            return []
        if fun in (0, 4):
            # 0: minimum functionality, 4: airplane mode; SIM stays accessible (DS +CFUN).
            self.fun = fun
            self._radio_off()
            return []
        raise _Cme(CmeError.OPERATION_NOT_SUPPORTED)

    def _cmd_creg(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"?":
            return [b"+CREG: %d," % self.settings.creg_n
                    + self._creg_fields(self._cs, self.settings.creg_n, urc=False)]
        if kind == b"=?":
            return [b"+CREG: (0-2)"]
        if kind == b"=":
            self.settings.creg_n = _int_arg(args, 0, 2, default=0)
            return []
        raise _Syntax()

    def _cmd_cgreg(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"?":
            return [b"+CGREG: %d," % self.settings.cgreg_n
                    + self._cgreg_fields(self._ps, self.settings.cgreg_n, urc=False)]
        if kind == b"=?":
            return [b"+CGREG: (0-2)"]
        if kind == b"=":
            self.settings.cgreg_n = _int_arg(args, 0, 2, default=0)
            return []
        raise _Syntax()

    def _creg_fields(self, stat: Registration, n: int, *, urc: bool) -> bytes:
        text = b"%d" % stat
        if n == 2 and stat in (Registration.HOME, Registration.ROAMING):
            net = self._network
            text += b',"%04X","%08X",%d' % (net.lac, net.ci, _ACT_UTRAN)
        return text

    def _cgreg_fields(self, stat: Registration, n: int, *, urc: bool) -> bytes:
        text = b"%d" % stat
        if n == 2 and stat in (Registration.HOME, Registration.ROAMING):
            net = self._network
            text += b',"%04X","%08X",%d,"%02X"' % (net.lac, net.ci, _ACT_UTRAN, net.rac)
        return text

    def _cmd_ipr(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"?":
            return [b"+IPR: %d" % self.ipr]
        if kind == b"=?":
            return [b"+IPR: (%s),()" % ",".join(str(r) for r in _IPR_RATES).encode()]
        if kind == b"=":
            rate = _int_arg(args, 0, 921600, default=0)
            if rate not in _IPR_RATES:
                raise _Cme(CmeError.OPERATION_NOT_SUPPORTED)
            self.ipr = rate
            return []
        raise _Syntax()

    def _cmd_csim(self, kind: bytes, args: bytes) -> list[bytes]:
        if kind == b"=?":
            return []
        if kind != b"=":
            raise _Syntax()
        # 27.007 §8.17: AT+CSIM=<length>,<command>; <length> = number of hex characters.
        m = re.fullmatch(rb'([0-9]{1,4}),"([0-9A-Fa-f]*)"', args)
        if m is None:
            raise _Cme(CmeError.OPERATION_NOT_ALLOWED)
        apdu = _apdu_arg(m.group(1), m.group(2))
        self._require_card()
        return self._begin(self.uicc.csim(apdu), lambda resp: [_hex_answer(b"+CSIM", resp)])

    def _cmd_ccho(self, kind: bytes, args: bytes) -> list[bytes]:
        # 27.007 §8.45: AT+CCHO=<dfname> -> <sessionid>; we prefix "+CCHO: " as many modems do
        # (Habits.ccho_prefix; what the SARA-U2 firmware prints is not confirmed).
        self._require_logical_channels()
        if kind == b"=?":
            return []
        if kind != b"=":
            raise _Syntax()
        m = re.fullmatch(rb'"((?:[0-9A-Fa-f]{2}){1,16})"', args)
        if m is None:
            raise _Cme(CmeError.OPERATION_NOT_ALLOWED)
        self._require_card()
        prefix = b"+CCHO: " if self.habits.ccho_prefix else b""
        return self._begin(self.uicc.open_channel(bytes.fromhex(m.group(1).decode())),
                           lambda sessionid: [prefix + b"%d" % sessionid])

    def _cmd_cchc(self, kind: bytes, args: bytes) -> list[bytes]:
        # 27.007 §8.46: AT+CCHC=<sessionid> -> OK.
        self._require_logical_channels()
        if kind == b"=?":
            return []
        if kind != b"=":
            raise _Syntax()
        if not re.fullmatch(rb"[0-9]{1,5}", args):
            raise _Cme(CmeError.OPERATION_NOT_ALLOWED)
        self._require_card()
        return self._begin(self.uicc.close_channel(int(args)), lambda _: [])

    def _cmd_cgla(self, kind: bytes, args: bytes) -> list[bytes]:
        # 27.007 §8.43: AT+CGLA=<sessionid>,<length>,<command> -> +CGLA: <length>,<response>.
        self._require_logical_channels()
        if kind == b"=?":
            return []
        if kind != b"=":
            raise _Syntax()
        m = re.fullmatch(rb'([0-9]{1,5}),([0-9]{1,4}),"([0-9A-Fa-f]*)"', args)
        if m is None:
            raise _Cme(CmeError.OPERATION_NOT_ALLOWED)
        apdu = _apdu_arg(m.group(2), m.group(3))
        self._require_card()
        return self._begin(self.uicc.channel_access(int(m.group(1)), apdu),
                           lambda resp: [_hex_answer(b"+CGLA", resp)])

    def _require_logical_channels(self) -> None:
        if not self.habits.logical_channel_commands:
            raise _Cme(CmeError.OPERATION_NOT_SUPPORTED)  # as any unsupported command

    def _require_card(self) -> None:
        """A UICC access command may go ahead (SIM present, no SIM-busy fault left)."""
        self._require_sim()
        if self.sim_busy_commands > 0:
            self.sim_busy_commands -= 1
            raise _Cme(CmeError.SIM_BUSY)

    def _require_sim(self) -> None:
        if not self.sim_present:
            raise _Cme(CmeError.SIM_NOT_INSERTED)


def _apdu_arg(length: bytes, hexa: bytes) -> bytes:
    """<length>,<command> of +CSIM / +CGLA: <length> counts hex characters (27.007 §8.17)."""
    n = int(length)
    if n != len(hexa) or n % 2 or not 8 <= n <= _CSIM_MAX_HEX:
        raise _Cme(CmeError.OPERATION_NOT_ALLOWED)
    return bytes.fromhex(hexa.decode())


def _hex_answer(name: bytes, resp: bytes) -> bytes:
    """``+CSIM: <length>,"<response>"`` (the same shape for +CGLA)."""
    hexa = resp.hex().upper().encode()
    return b'%s: %d,"%s"' % (name, len(hexa), hexa)


def _basic_flag(args: bytes) -> bool:
    if args in (b"", b"0"):
        return False
    if args == b"1":
        return True
    raise _Syntax()


def _int_field(field_: bytes, lo: int, hi: int) -> int:
    if not re.fullmatch(rb"[0-9]{1,7}", field_):
        raise _Syntax()
    value = int(field_)
    if not lo <= value <= hi:
        raise _Cme(CmeError.OPERATION_NOT_SUPPORTED)
    return value


def _int_arg(args: bytes, lo: int, hi: int, *, default: int) -> int:
    if args == b"":
        return default
    fields = _split_args(args)
    if len(fields) != 1:
        raise _Syntax()
    return _int_field(fields[0], lo, hi)


def _split_args(args: bytes) -> list[bytes]:
    """Split a parameter list at commas outside quotes."""
    fields, cur, quoted = [], bytearray(), False
    for b in args:
        if b == 0x22:
            quoted = not quoted
        if b == 0x2C and not quoted:
            fields.append(bytes(cur))
            cur.clear()
        else:
            cur.append(b)
    if quoted:
        raise _Syntax()
    fields.append(bytes(cur))
    return fields


def _split_commands(body: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """Split the text after "AT" into (name, kind, args) (V.250 §5.3, §5.4).

    Command names are case-insensitive; text inside quotes keeps its case.
    """
    commands: list[tuple[bytes, bytes, bytes]] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i:i + 1]
        if c == b" ":
            i += 1
            continue
        if c == b"+":
            m = _EXT_NAME.match(body.upper(), i)
            if m is None:
                raise _Syntax()
            name = m.group(0)
            i = m.end()
            # Parameters run to the next ';' outside quotes.
            j, quoted = i, False
            while j < n and (quoted or body[j] != 0x3B):
                if body[j] == 0x22:
                    quoted = not quoted
                j += 1
            if quoted:
                raise _Syntax()
            rest = body[i:j]
            i = j + 1 if j < n else j
            if rest == b"":
                commands.append((name, b"", b""))
            elif rest == b"?":
                commands.append((name, b"?", b""))
            elif rest == b"=?":
                commands.append((name, b"=?", b""))
            elif rest.startswith(b"="):
                commands.append((name, b"=", rest[1:]))
            else:
                raise _Syntax()
            continue
        m = _BASIC.match(body.upper(), i)
        if m is None:
            raise _Syntax()
        commands.append((m.group(1), b"", m.group(2)))
        i = m.end()
        if i < n and body[i] == 0x3B:
            i += 1
    return commands


_HANDLERS: Final = {
    b"E": AtCore._cmd_e,
    b"V": AtCore._cmd_v,
    b"Z": AtCore._cmd_z,
    b"I": AtCore._cmd_i,
    b"&K": AtCore._cmd_and_k,
    b"&F": AtCore._cmd_and_f,
    b"+CMEE": AtCore._cmd_cmee,
    b"+CPIN": AtCore._cmd_cpin,
    b"+CCID": AtCore._cmd_ccid,
    b"+CGSN": AtCore._cmd_cgsn,
    b"+CGMI": AtCore._cmd_cgmi,
    b"+CGMM": AtCore._cmd_cgmm,
    b"+CGMR": AtCore._cmd_cgmr,
    b"+CSQ": AtCore._cmd_csq,
    b"+CFUN": AtCore._cmd_cfun,
    b"+CREG": AtCore._cmd_creg,
    b"+CGREG": AtCore._cmd_cgreg,
    b"+IPR": AtCore._cmd_ipr,
    b"+CSIM": AtCore._cmd_csim,
    b"+CCHO": AtCore._cmd_ccho,
    b"+CCHC": AtCore._cmd_cchc,
    b"+CGLA": AtCore._cmd_cgla,
}
