"""Terminal side of the SIM Toolkit (ETSI TS 102 223 v15, CAT) for the virtual modem: sans-I/O.

The modem ("terminal", "ME") announces its toolkit facilities in TERMINAL PROFILE, FETCHes the
proactive command whenever a card answer ends in ``91xx``, carries it out and answers with
TERMINAL RESPONSE; it reports events (data available, channel status, timer expiration) with
ENVELOPE. The codec is ``ztp.stk``; this module is the behaviour.

Abbreviations: TR = TERMINAL RESPONSE, BIP = Bearer Independent Protocol (§11), TS 102 221 =
the card's APDU spec (§10 CAT commands, §7.4.2.2 SW1 '91').

Theory of operation
-------------------
The core never touches the card or a socket. It keeps a queue of APDUs it wants sent to the card
(``pending_apdu()``: TERMINAL PROFILE, FETCH, TERMINAL RESPONSE, ENVELOPE); the driver sends one,
under the card lock shared with AT+CSIM, and hands the answer to ``card_response()``. Every card
answer the host receives via AT+CSIM is shown to ``card_answer_seen()`` too, so a ``91xx`` there
also triggers a FETCH (the host still gets the ``91xx`` unchanged).

A proactive command that needs the network returns an action from ``next_event()``:
``OpenLink`` (the driver connects, then calls ``link_opened``/``link_failed``), ``SendLink``
(write bytes; fire and forget) or ``CloseLink``. Bytes from the network arrive with
``link_data()``, a remote close with ``link_closed()``. Timers started by TIMER MANAGEMENT are
deadlines: ``timer()`` / ``handle_timer(now_ms)``.

Priorities (one APDU at a time): a TR for the command in progress, then a FETCH, then ENVELOPEs.
No ENVELOPE is sent while a proactive command is in progress (FETCHed, TR not yet sent).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from ztp import stk
from ztp.stk import (
    BipError,
    ChannelStatus,
    CloseChannel,
    EventDownload,
    GeneralResult,
    GetChannelStatus,
    OpenChannel,
    ReceiveData,
    Result,
    SendData,
    TerminalResponse,
    TimerAction,
    TimerExpiration,
    TimerManagement,
    TransportProtocol,
)

__all__ = [
    "TERMINAL_PROFILE",
    "CloseLink",
    "OpenLink",
    "SendLink",
    "ToolkitTerminal",
]

log = logging.getLogger(__name__)

MAX_CHANNELS: Final = 7  # channel identifiers 1..7 (TS 102 223 §8.56)
# Largest Rx/Tx buffer the terminal grants (OPEN CHANNEL: "buffer size ... the terminal may
# propose a smaller one" -> result '07' performed with modification).
MAX_BUFFER_SIZE: Final = 1500
# Bytes of channel data that fit one TR: 255 - details(5) - devices(4) - result(3)
# - channel data tag/length(3) - channel data length(3).
_MAX_TR_DATA: Final = 237
# TS 102 223 §8.12.2 result '24': action in contradiction with the current timer state.
_RESULT_TIMER_CONTRADICTION: Final = 0x24
_SW1_PROACTIVE: Final = 0x91  # TS 102 221 §10.2.1.1: normal ending, proactive command pending
_SW_TOOLKIT_BUSY: Final = 0x9300
_ENVELOPE_RETRY_MS: Final = 100
# TS 102 223 §6.6.6 POLL INTERVAL (type '03'), not in the ztp.stk codec; its Duration data
# object (§8.8, tag '04'/'84': time unit 00 min / 01 s / 02 tenths of s, interval 01-FF).
_POLL_INTERVAL: Final = 0x03
_TAG_DURATION: Final = 0x04
_UNIT_MS: Final = (60_000, 1000, 100)
# TS 102 221 §11.1.2 STATUS, P2 '0C' = no data returned: the proactive polling APDU.
STATUS_APDU: Final = bytes.fromhex("80F2000C")

# TERMINAL PROFILE (TS 102 223 §5.2): BIP with TCP and UDP client, GPRS bearer, events
# data available / channel status, TIMER MANAGEMENT incl. get value, timer expiration.
TERMINAL_PROFILE: Final = stk.build_terminal_profile(
    stk.BIP_FEATURES
    + (
        stk.Feature.GPRS,
        stk.Feature.TIMER_MANAGEMENT,
        stk.Feature.TIMER_GET_VALUE,
        stk.Feature.TIMER_EXPIRATION,
    ),
    channels=MAX_CHANNELS,
)


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


@dataclass(frozen=True)
class OpenLink:
    """Connect channel ``channel``: TCP or UDP client to ``address``:``port``."""

    channel: int
    transport: TransportProtocol
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int


@dataclass(frozen=True)
class SendLink:
    channel: int
    data: bytes


@dataclass(frozen=True)
class CloseLink:
    channel: int


@dataclass
class _Channel:
    channel: int
    transport: TransportProtocol
    buffer_size: int
    established: bool = False
    dropped: bool = False
    rx: bytearray = field(default_factory=bytearray)
    tx: bytearray = field(default_factory=bytearray)
    rx_reported: bool = False  # a data-available event is out for the current Rx data

    def status(self) -> ChannelStatus:
        further = stk.CHANNEL_STATUS_LINK_DROPPED if self.dropped else \
            stk.CHANNEL_STATUS_NO_FURTHER_INFO
        return ChannelStatus(self.channel, self.established, further)


@dataclass
class _Timer:
    started_ms: int
    deadline_ms: int


def _without_channel(envelopes: deque[tuple[int | None, bytes]], channel: int,
                     ) -> deque[tuple[int | None, bytes]]:
    """The queued events minus those of a channel the card closed. They describe a link that
    no longer exists: sent later, the card takes them for the next link it opens with that
    channel number (a stale "link dropped" ends a fresh connection). CLOSE CHANNEL runs from
    a FETCH answer, so no envelope is in flight then."""
    return deque(e for e in envelopes if e[0] != channel)


class ToolkitTerminal:
    """The modem's SIM Toolkit terminal (sans-I/O).

    Args:
        dns_servers: what OPEN CHANNEL with "DNS server address requested" gets back.
        bearer_available: a callable telling whether the packet bearer is up (PS attached).
    """

    def __init__(
        self,
        *,
        dns_servers: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = (),
        bearer_available: object = None,
    ) -> None:
        self.dns_servers = dns_servers
        self._bearer_available = bearer_available if callable(bearer_available) else (
            lambda: True)
        self._channels: dict[int, _Channel] = {}
        self._timers: dict[int, _Timer] = {}
        self._envelopes: deque[tuple[int | None, bytes]] = deque()  # (channel, APDU)
        self._envelope_retry_at: int | None = None
        self._fetch_len: int | None = None
        self._tr: bytes | None = None  # TR APDU waiting to go to the card
        self._in_command: stk.ProactiveCommand | None = None  # waiting for its I/O
        self._in_flight: str | None = None  # kind of the APDU sent, awaiting card_response
        self._actions: deque[OpenLink | SendLink | CloseLink] = deque()
        self._profile_pending = False
        self._now_ms = 0
        self.poll_interval_ms: int | None = None  # set by POLL INTERVAL; None = no polling
        self._next_poll_ms: int | None = None
        self._poll_due = False
        self.commands_done: list[int] = []  # types of proactive commands executed (for tests)

    # ------------------------------------------------------------------ card side
    def start(self) -> None:
        """Card reset: forget everything, queue TERMINAL PROFILE."""
        self.stop()
        self._profile_pending = True

    def stop(self) -> None:
        """Modem reboot: close every channel (their CloseLink actions are queued)."""
        for ch in sorted(self._channels):
            self._actions.append(CloseLink(ch))
        self._channels.clear()
        self._timers.clear()
        self._envelopes.clear()
        self._envelope_retry_at = None
        self._fetch_len = None
        self._tr = None
        self._in_command = None
        self._in_flight = None
        self._profile_pending = False
        self.poll_interval_ms = None
        self._next_poll_ms = None
        self._poll_due = False

    def _next_kind(self) -> str | None:
        if self._in_flight is not None:
            return None
        if self._profile_pending:
            return "profile"
        if self._tr is not None:
            return "tr"
        if self._in_command is not None:
            return None  # waiting for the network; no FETCH/ENVELOPE inside a command
        if self._fetch_len is not None:
            return "fetch"
        if self._envelopes and self._envelope_retry_at is None:
            return "envelope"
        if self._poll_due:
            return "status"
        return None

    def has_pending_apdu(self) -> bool:
        """True when ``pending_apdu`` would return an APDU."""
        return self._next_kind() is not None

    def idle(self) -> bool:
        """Nothing in flight, queued or inside a proactive command: the card may get an
        APDU from elsewhere (an SMS-PP download ENVELOPE) without splitting a FETCH / TR."""
        return (self._in_flight is None and not self._profile_pending and self._tr is None
                and self._in_command is None and self._fetch_len is None)

    def pending_apdu(self) -> bytes | None:
        """The next APDU for the card, or None. Call ``card_response`` with its answer."""
        kind = self._next_kind()
        if kind is None:
            return None
        self._in_flight = kind
        if kind == "profile":
            return stk.build_terminal_profile_apdu(TERMINAL_PROFILE)
        if kind == "tr":
            assert self._tr is not None
            return self._tr
        if kind == "fetch":
            assert self._fetch_len is not None
            return stk.build_fetch_apdu(self._fetch_len)
        if kind == "status":
            return STATUS_APDU
        return self._envelopes[0][1]

    def card_response(self, response: bytes, now_ms: int) -> None:
        """The card's answer (data + SW1 SW2) to the APDU ``pending_apdu`` returned."""
        self._now_ms = max(self._now_ms, now_ms)
        kind, self._in_flight = self._in_flight, None
        if kind is None:
            raise RuntimeError("card_response() without an APDU in flight")
        sw = int.from_bytes(response[-2:], "big") if len(response) >= 2 else 0
        if kind == "profile":
            self._profile_pending = False
        elif kind == "tr":
            self._tr = None
        elif kind == "status":
            self._poll_due = False
            if self.poll_interval_ms is not None:
                self._next_poll_ms = now_ms + self.poll_interval_ms
        elif kind == "envelope":
            if sw == _SW_TOOLKIT_BUSY:
                # TS 102 221 §7.4.2.2: '93 00' toolkit busy; the terminal retries later.
                self._envelope_retry_at = now_ms + _ENVELOPE_RETRY_MS
                return
            self._envelopes.popleft()
        elif kind == "fetch":
            self._fetch_len = None
            if len(response) > 2 and (sw == 0x9000 or sw >> 8 == _SW1_PROACTIVE):
                self._execute(response[:-2], now_ms)
            else:
                log.info("STK: FETCH answered %04X without a command", sw)
        self.card_answer_seen(response)

    def card_answer_seen(self, response: bytes) -> None:
        """Any card answer (also the host's AT+CSIM ones): SW 91xx -> a FETCH is due."""
        if len(response) >= 2 and response[-2] == _SW1_PROACTIVE:
            # TS 102 221 §10.2.1.1: SW2 = length of the proactive command. 9100 never occurs.
            if response[-1]:
                self._fetch_len = response[-1]

    # ------------------------------------------------------------------ network side
    def next_event(self) -> OpenLink | SendLink | CloseLink | _NeedData:
        """The next network action for the driver, or ``NEED_DATA``."""
        return self._actions.popleft() if self._actions else NEED_DATA

    def link_opened(self, channel: int) -> None:
        cmd = self._in_command
        if not isinstance(cmd, OpenChannel) or channel not in self._channels:
            return  # reboot in between: stale completion
        ch = self._channels[channel]
        ch.established = True
        result = GeneralResult.PERFORMED_SUCCESSFULLY
        if ch.buffer_size < cmd.buffer_size:
            result = GeneralResult.PERFORMED_WITH_MODIFICATION
        self._answer(cmd, Result(result), channel_status=(ch.status(),), bearer=cmd.bearer,
                     buffer_size=ch.buffer_size,
                     dns_servers=self.dns_servers if cmd.dns_request else ())

    def link_failed(self, channel: int, network_down: bool = False) -> None:
        cmd = self._in_command
        if not isinstance(cmd, OpenChannel) or channel not in self._channels:
            return
        del self._channels[channel]
        if network_down:
            result = Result(GeneralResult.NETWORK_UNABLE_NOW, b"\x00")
        else:
            result = Result(GeneralResult.BIP_ERROR, bytes([BipError.REMOTE_DEVICE_NOT_REACHABLE]))
        self._answer(cmd, result, bearer=cmd.bearer, buffer_size=cmd.buffer_size)

    def link_data(self, channel: int, data: bytes) -> None:
        """Bytes arrived from the network on ``channel``."""
        ch = self._channels.get(channel)
        if ch is None or not data:
            return
        room = ch.buffer_size - len(ch.rx)
        if len(data) > room:
            # The Rx buffer is full: for TCP the real terminal would stop reading (flow
            # control); here the excess is dropped and logged (UDP semantics).
            log.warning("STK: channel %d Rx buffer full, %d bytes dropped", channel,
                        len(data) - room)
            data = data[:room]
        ch.rx += data
        if not ch.rx_reported and ch.rx:
            # §4.7 / §7.5.10: data available when data arrives into an empty Rx buffer.
            ch.rx_reported = True
            self._event(EventDownload(stk.Event.DATA_AVAILABLE, ch.status(),
                                      min(len(ch.rx), 255)), channel)

    def link_closed(self, channel: int) -> None:
        """The remote end closed (or the link dropped): channel status event (§7.5.11)."""
        ch = self._channels.get(channel)
        if ch is None or ch.dropped:
            return
        ch.established = False
        ch.dropped = True
        self._event(EventDownload(stk.Event.CHANNEL_STATUS, ch.status()), channel)

    def drop_all_links(self) -> None:
        """The bearer went away (network lost): every open channel drops."""
        for channel in sorted(self._channels):
            if self._channels[channel].established:
                self._actions.append(CloseLink(channel))
                self.link_closed(channel)

    @property
    def open_channels(self) -> tuple[int, ...]:
        return tuple(sorted(self._channels))

    # ------------------------------------------------------------------ timers
    def timer(self) -> int | None:
        """Next deadline (a toolkit timer or an ENVELOPE retry) in ms, or None."""
        deadlines = [t.deadline_ms for t in self._timers.values()]
        if self._envelope_retry_at is not None:
            deadlines.append(self._envelope_retry_at)
        if self._next_poll_ms is not None and not self._poll_due:
            deadlines.append(self._next_poll_ms)
        return min(deadlines) if deadlines else None

    def handle_timer(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)
        if self._envelope_retry_at is not None and now_ms >= self._envelope_retry_at:
            self._envelope_retry_at = None
        if self._next_poll_ms is not None and now_ms >= self._next_poll_ms:
            self._next_poll_ms = None
            self._poll_due = True
        for timer_id in sorted(self._timers):
            t = self._timers[timer_id]
            if now_ms >= t.deadline_ms:
                del self._timers[timer_id]
                # §7.4: TIMER EXPIRATION carries the timer value (the time that elapsed).
                elapsed_s = min((now_ms - t.started_ms) // 1000, 24 * 3600 - 1)
                self._event(TimerExpiration(timer_id, elapsed_s))

    # ------------------------------------------------------------------ internals
    def _event(self, env: stk.Envelope, channel: int | None = None) -> None:
        self._envelopes.append((channel, stk.build_envelope_apdu(stk.build_envelope(env))))

    def _answer(self, cmd: stk.ProactiveCommand, result: Result, **kw: object) -> None:
        tr = TerminalResponse.for_command(cmd, result, **kw)
        self._tr = stk.build_terminal_response_apdu(stk.build_terminal_response(tr))
        self._in_command = None
        self.commands_done.append(int(cmd.TYPE))

    def _answer_raw(self, details: stk.CommandDetails, result: Result) -> None:
        tr = TerminalResponse(details, result)
        self._tr = stk.build_terminal_response_apdu(stk.build_terminal_response(tr))

    def _execute(self, data: bytes, now_ms: int) -> None:
        details = stk.peek_command_details(data)
        if details is not None and details.type == _POLL_INTERVAL:
            self._poll_interval(details, data, now_ms)
            return
        try:
            cmd = stk.parse_proactive_command(data)
        except stk.StkDecodeError as err:
            details = stk.peek_command_details(data)
            log.info("STK: cannot carry out proactive command: %s", err)
            if details is None:
                return  # nothing to answer to
            known = details.type in {int(t) for t in stk.CommandType}
            general = GeneralResult.COMMAND_DATA_NOT_UNDERSTOOD if known else \
                GeneralResult.BEYOND_TERMINAL_CAPABILITIES
            self._answer_raw(details, Result(general))
            return
        log.info("STK: proactive command %s", type(cmd).__name__)
        if isinstance(cmd, OpenChannel):
            self._open_channel(cmd)
        elif isinstance(cmd, SendData):
            self._send_data(cmd)
        elif isinstance(cmd, ReceiveData):
            self._receive_data(cmd)
        elif isinstance(cmd, CloseChannel):
            self._close_channel(cmd)
        elif isinstance(cmd, GetChannelStatus):
            statuses = tuple(self._channels[c].status() for c in sorted(self._channels))
            self._answer(cmd, Result(GeneralResult.PERFORMED_SUCCESSFULLY),
                         channel_status=statuses)
        elif isinstance(cmd, TimerManagement):
            self._timer_management(cmd, now_ms)

    def _open_channel(self, cmd: OpenChannel) -> None:
        if cmd.transport not in (TransportProtocol.TCP_CLIENT_REMOTE,
                                 TransportProtocol.UDP_CLIENT_REMOTE):
            self._answer(cmd, Result(GeneralResult.BEYOND_TERMINAL_CAPABILITIES),
                         bearer=cmd.bearer, buffer_size=cmd.buffer_size)
            return
        destination = cmd.destination
        if destination is None and cmd.dns_request and self.dns_servers:
            # Project convention (ztp.stk): a UDP channel with "DNS server address requested"
            # and no destination goes to the first DNS server the terminal returns.
            destination = self.dns_servers[0]
        if destination is None:
            self._answer(cmd, Result(GeneralResult.REQUIRED_VALUES_MISSING),
                         bearer=cmd.bearer, buffer_size=cmd.buffer_size)
            return
        if not self._bearer_available():
            # §6.4.27: "network currently unable to process command", no specific cause.
            self._answer(cmd, Result(GeneralResult.NETWORK_UNABLE_NOW, b"\x00"),
                         bearer=cmd.bearer, buffer_size=cmd.buffer_size)
            return
        free = [c for c in range(1, MAX_CHANNELS + 1) if c not in self._channels]
        if not free:
            self._answer(cmd, Result(GeneralResult.BIP_ERROR,
                                     bytes([BipError.NO_CHANNEL_AVAILABLE])),
                         bearer=cmd.bearer, buffer_size=cmd.buffer_size)
            return
        channel = free[0]
        self._channels[channel] = _Channel(channel, cmd.transport,
                                           min(cmd.buffer_size, MAX_BUFFER_SIZE))
        self._in_command = cmd
        self._actions.append(OpenLink(channel, cmd.transport, destination, cmd.port))

    def _channel_or_error(self, cmd: SendData | ReceiveData | CloseChannel) -> _Channel | None:
        ch = self._channels.get(cmd.channel)
        if ch is None:
            self._answer(cmd, Result(GeneralResult.BIP_ERROR,
                                     bytes([BipError.CHANNEL_ID_NOT_VALID])))
        return ch

    def _send_data(self, cmd: SendData) -> None:
        ch = self._channel_or_error(cmd)
        if ch is None:
            return
        if not ch.established:
            self._answer(cmd, Result(GeneralResult.BIP_ERROR, bytes([BipError.CHANNEL_CLOSED])))
            return
        if len(ch.tx) + len(cmd.data) > ch.buffer_size:
            self._answer(cmd, Result(GeneralResult.BIP_ERROR,
                                     bytes([BipError.BUFFER_SIZE_NOT_AVAILABLE])))
            return
        ch.tx += cmd.data
        if cmd.immediate:
            self._actions.append(SendLink(ch.channel, bytes(ch.tx)))
            ch.tx.clear()
        free = min(ch.buffer_size - len(ch.tx), 255)
        self._answer(cmd, Result(GeneralResult.PERFORMED_SUCCESSFULLY), channel_data_length=free)

    def _receive_data(self, cmd: ReceiveData) -> None:
        ch = self._channel_or_error(cmd)
        if ch is None:
            return
        if not ch.rx:
            general = GeneralResult.BIP_ERROR
            cause = BipError.CHANNEL_CLOSED if ch.dropped else BipError.NO_SPECIFIC_CAUSE
            self._answer(cmd, Result(general, bytes([cause])))
            return
        want = cmd.length or 255
        n = min(want, len(ch.rx), _MAX_TR_DATA)
        data = bytes(ch.rx[:n])
        del ch.rx[:n]
        # §6.4.29: fewer bytes than asked -> "performed, with missing information".
        general = GeneralResult.PERFORMED_SUCCESSFULLY if n == want else \
            GeneralResult.PERFORMED_MISSING_INFORMATION
        self._answer(cmd, Result(general), channel_data=data,
                     channel_data_length=min(len(ch.rx), 255))
        if not ch.rx:
            ch.rx_reported = False

    def _close_channel(self, cmd: CloseChannel) -> None:
        ch = self._channel_or_error(cmd)
        if ch is None:
            return
        del self._channels[cmd.channel]
        self._envelopes = _without_channel(self._envelopes, cmd.channel)
        self._actions.append(CloseLink(cmd.channel))
        self._answer(cmd, Result(GeneralResult.PERFORMED_SUCCESSFULLY))

    def _timer_management(self, cmd: TimerManagement, now_ms: int) -> None:
        ok = Result(GeneralResult.PERFORMED_SUCCESSFULLY)
        if cmd.action == TimerAction.START:
            assert cmd.value_s is not None
            self._timers[cmd.timer_id] = _Timer(now_ms, now_ms + cmd.value_s * 1000)
            self._answer(cmd, ok, timer_id=cmd.timer_id)
            return
        t = self._timers.get(cmd.timer_id)
        if t is None:
            self._answer(cmd, Result(_RESULT_TIMER_CONTRADICTION), timer_id=cmd.timer_id)
            return
        remaining_s = max(0, -(-(t.deadline_ms - now_ms) // 1000))
        if cmd.action == TimerAction.DEACTIVATE:
            del self._timers[cmd.timer_id]
        self._answer(cmd, ok, timer_id=cmd.timer_id, timer_value_s=min(remaining_s, 86399))

    def _poll_interval(self, details: stk.CommandDetails, data: bytes, now_ms: int) -> None:
        """POLL INTERVAL (§6.4.6): poll with STATUS at the requested interval; the TR carries
        the interval the terminal will use (here: the one asked for, at least 1 s)."""
        tlvs = _short_tlvs(data)
        duration = [v for tag, v in tlvs if tag & 0x7F == _TAG_DURATION]
        if len(duration) != 1 or len(duration[0]) != 2 or \
                duration[0][0] > 2 or duration[0][1] == 0:
            self._answer_raw(details, Result(GeneralResult.COMMAND_DATA_NOT_UNDERSTOOD))
            return
        unit, interval = duration[0]
        self.poll_interval_ms = max(1000, interval * _UNIT_MS[unit])
        if self.poll_interval_ms != interval * _UNIT_MS[unit]:
            unit, interval = 1, self.poll_interval_ms // 1000
        self._next_poll_ms = now_ms + self.poll_interval_ms
        tr = (details.encode() + bytes.fromhex("82028281")
              + Result(GeneralResult.PERFORMED_SUCCESSFULLY).encode()
              + bytes([0x80 | _TAG_DURATION, 2, unit, interval]))
        self._tr = stk.build_terminal_response_apdu(tr)
        self.commands_done.append(_POLL_INTERVAL)


def _short_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """COMPREHENSION-TLVs of a short proactive command ``D0 L ...`` (1-byte tags/lengths);
    empty when the framing is wrong (the caller then answers 'data not understood')."""
    if len(data) < 2 or data[0] != stk.BerTag.PROACTIVE_COMMAND or data[1] != len(data) - 2:
        return []
    out, pos = [], 2
    while pos < len(data):
        if pos + 2 > len(data) or data[pos + 1] > 0x7F or pos + 2 + data[pos + 1] > len(data):
            return []
        out.append((data[pos], data[pos + 2:pos + 2 + data[pos + 1]]))
        pos += 2 + data[pos + 1]
    return out
