"""The applet's side of BIP (ETSI TS 102 223 v15 §6.4.27-31, §11): proactive commands as
generator steps.

Each helper is a generator that yields a proactive command (``ztp.stk``) and is resumed with
the terminal's ``TerminalResponse``, or yields ``WAIT`` and is resumed with the next ENVELOPE
(event download or TIMER EXPIRATION). The job (``_job.py``) and its HTTPS exchange
(``_https.py``) compose them with ``yield from``.

Housekeeping waits for the network: commands that do not move the exchange forward (arming
the watchdog, closing the DNS channel) are ``defer``-red and issued at the next wait for an
event, while the query or the ClientHello is in flight. Toolkit timers: 1 is the attempt's
watchdog, 2 the retry backoff, 3 runs while the cached DNS answer is valid.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Generator
from typing import Final, TypeAlias

from ztp import stk
from ztp.stk import (
    CloseChannel,
    EventDownload,
    OpenChannel,
    ReceiveData,
    SendData,
    TerminalResponse,
    TimerAction,
    TimerExpiration,
    TimerManagement,
    TransportProtocol,
)

from ._dns import DnsCache
from ._request import JobFailure, ResultCode

__all__ = ["TIMER_BACKOFF", "TIMER_DNS", "TIMER_WATCHDOG", "WAIT", "BipLink", "Resume", "Yield"]

TIMER_WATCHDOG: Final = 1
TIMER_BACKOFF: Final = 2
TIMER_DNS: Final = 3  # runs while the cached DNS answer is valid
_MAX_RECEIVE: Final = 237  # channel data that fits one TERMINAL RESPONSE
_MAX_SEND: Final = 240  # channel data per SEND DATA (fits the 255-byte proactive command)
_MAX_TUNNEL_BYTES: Final = 16 * 1024  # per connection: more is a misbehaving server


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = _Wait()

Yield: TypeAlias = "stk.ProactiveCommand | _Wait"
Resume: TypeAlias = "TerminalResponse | EventDownload | TimerExpiration"
Step: TypeAlias = Generator[Yield, Resume, object]


class BipLink:
    """The toolkit commands of one job, and what it knows about the terminal's timers.

    Args:
        open_channels: the BIP channels the terminal has open now (the card keeps the list).
        dns_cache: the card's DNS cache, dropped when timer 3 cannot be started (or None).
    """

    def __init__(
        self, open_channels: Callable[[], tuple[int, ...]], dns_cache: DnsCache | None
    ) -> None:
        self.open_channels = open_channels
        self._dns_cache = dns_cache
        self._deferred: list[stk.ProactiveCommand] = []  # issued at the next wait
        self.watchdog = False  # timer 1 is running (started, not expired or deactivated)

    def defer(self, cmd: stk.ProactiveCommand) -> None:
        self._deferred.append(cmd)

    def drop_deferred(self) -> None:
        self._deferred.clear()

    def command(self, cmd: stk.ProactiveCommand) -> Generator[Yield, Resume, TerminalResponse]:
        tr = yield cmd
        if isinstance(tr, TerminalResponse):
            return tr
        # An envelope cannot be the answer to a command; the card never does this.
        raise RuntimeError(f"job resumed with {tr!r} while waiting for a TR")

    def timer(
        self, action: TimerAction, timer_id: int, value_s: int | None = None
    ) -> Generator[Yield, Resume, None]:
        yield from self.issue(TimerManagement(1, action, timer_id, value_s))

    def issue(self, cmd: stk.ProactiveCommand) -> Generator[Yield, Resume, TerminalResponse]:
        """A command whose TR needs no decision here (timers, CLOSE CHANNEL)."""
        tr = yield from self.command(cmd)
        if isinstance(cmd, TimerManagement) and cmd.timer_id == TIMER_WATCHDOG:
            self.watchdog = cmd.action == TimerAction.START and tr.result.ok
        if isinstance(cmd, TimerManagement) and cmd.timer_id == TIMER_DNS and not tr.result.ok:
            if self._dns_cache is not None:
                self._dns_cache.clear()  # nothing would expire it
        return tr

    def wait_timer(self, timer_id: int) -> Generator[Yield, Resume, None]:
        """Wait (ignoring other events) until TIMER EXPIRATION of ``timer_id``."""
        while True:
            env = yield WAIT
            if isinstance(env, TimerExpiration):
                if env.timer_id == TIMER_WATCHDOG:
                    self.watchdog = False
                if env.timer_id == timer_id:
                    return

    def wait_event(self, channel: int) -> Generator[Yield, Resume, EventDownload]:
        """Next event for ``channel``; the watchdog's expiry ends the attempt."""
        while self._deferred:  # housekeeping while the network works (module docstring)
            yield from self.issue(self._deferred.pop(0))
        while True:
            env = yield WAIT
            if isinstance(env, TimerExpiration):
                if env.timer_id == TIMER_WATCHDOG:
                    self.watchdog = False
                    raise JobFailure(ResultCode.TIMEOUT, True, "watchdog expired")
                continue
            if isinstance(env, EventDownload) and env.channel_status.channel == channel:
                return env
            # events for channels we no longer use are stale: ignore them

    def open(
        self,
        transport: TransportProtocol,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        port: int,
        buffer_size: int,
        failure: int,
    ) -> Generator[Yield, Resume, int]:
        """OPEN CHANNEL (immediate link); returns the channel. ``address`` None: to the DNS
        server the terminal picks. Raises JobFailure(``failure``, transient) when refused."""
        cmd = OpenChannel(
            1, buffer_size, transport, port, address, immediate=True, dns_request=address is None
        )
        tr = yield from self.command(cmd)
        if not tr.result.ok or not tr.channel_status:
            raise JobFailure(failure, True, f"OPEN CHANNEL refused: result {tr.result.general:02X}")
        status = tr.channel_status[0]
        if not status.established or not 1 <= status.channel <= 7:
            raise JobFailure(failure, True, "OPEN CHANNEL: link not established")
        return status.channel

    def send(self, channel: int, data: bytes) -> Generator[Yield, Resume, None]:
        while data:
            chunk, data = data[:_MAX_SEND], data[_MAX_SEND:]
            tr = yield from self.command(SendData(1, channel, chunk, immediate=not data))
            if not tr.result.ok:
                raise JobFailure(ResultCode.LINK_DROPPED, True, "SEND DATA refused")

    def receive(self, channel: int, announced: int) -> Generator[Yield, Resume, bytes]:
        """Drain the terminal's Rx buffer: RECEIVE DATA until it reports 0 bytes left."""
        out = bytearray()
        want = announced
        while want:
            tr = yield from self.command(ReceiveData(1, channel, min(want, _MAX_RECEIVE)))
            if not tr.result.ok:
                if out or tr.result.general != stk.GeneralResult.BIP_ERROR:
                    raise JobFailure(ResultCode.LINK_DROPPED, True, "RECEIVE DATA refused")
                return b""  # stale event: nothing waiting
            out += tr.channel_data or b""
            if len(out) > _MAX_TUNNEL_BYTES:
                raise JobFailure(ResultCode.HTTP_MALFORMED, False, "too much data")
            want = tr.channel_data_length or 0
        return bytes(out)

    def close_all(self, now: bool) -> Generator[Yield, Resume, None]:
        """CLOSE CHANNEL for every open channel (``now``: plain yield, no TR bookkeeping)."""
        for ch in self.open_channels():
            if now:
                yield CloseChannel(1, ch)
            else:
                yield from self.issue(CloseChannel(1, ch))
