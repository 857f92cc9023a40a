"""One client connection: the asyncio adapter around a :class:`~._session.GatewaySession`.

Thin (STYLE.md §2): bytes from the socket go into the session, its events are answered by the
gateway's :class:`~._exchange.Exchanges`, and what it has to send goes out in one write per
flight (the TLS server flight; the answer with close_notify). It is an ``asyncio.Protocol``,
not a stream: a loaded gateway spent a sixth of its time in the event loop and streams, with a
timeout armed and cancelled around every read and write (issue 14). Here one timer per
connection (``loop.call_later``) stands for every deadline: the session's (handshake, idle,
request), the linger after our last byte, and a write the client does not take. The timer is
moved only when a deadline comes earlier than the armed one; a timer that fires early (the idle
deadline moved on) re-arms itself.

Only waiting on the service (a PSK lookup that misses the cache, forwarding, a refusal that is
audited) runs as a task. Reading goes on meanwhile (the session keeps what arrives for after the
wait, as the kernel would), but only up to ``_WAIT_MAX_BYTES``: past that, reading is paused
until the wait ends, so a client still cannot make us buffer more than that. Pausing at every
wait instead cost two epoll changes per exchange (uvloop), for bytes a client rarely sends.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ztp.tls import ServerConfig, ServerConnection

from ._admission import address_key
from ._config import GatewayConfig
from ._exchange import Exchanges
from ._http import NEED_DATA
from ._session import Authenticated, Closed, Forward, GatewaySession, PskLookup, Refuse

__all__ = ["ConnectionOwner", "GatewayConnection"]

_LINGER_MAX_BYTES = 64 * 1024
_WAIT_MAX_BYTES = 64 * 1024  # read while waiting on the service; then reading is paused
_TCP_CORK = getattr(socket, "TCP_CORK", None)  # Linux


class ConnectionOwner(Protocol):
    """What a connection asks of its gateway: admission at accept, and its bookkeeping."""

    def admit(self, conn: GatewayConnection) -> bool: ...
    def verified(self, conn: GatewayConnection) -> None: ...
    def finished(self, conn: GatewayConnection) -> None: ...


class GatewayConnection(asyncio.Protocol):
    """Serves one accepted TCP connection (see the module docstring)."""

    def __init__(
        self,
        owner: ConnectionOwner,
        exchanges: Exchanges,
        config: GatewayConfig,
        tls_config: ServerConfig,
        clock: Callable[[], float],
        rng: Callable[[int], bytes],
    ) -> None:
        self._owner = owner
        self._exchanges = exchanges
        self._config = config
        self._tls_config = tls_config
        self._clock = clock
        self._rng = rng
        self._transport: asyncio.Transport | None = None
        self._session: GatewaySession | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiting_coro: Coroutine[Any, Any, None] | None = None  # until the task starts
        self._waited_bytes = 0  # read since the running wait began
        self._paused = False  # reading paused: _WAIT_MAX_BYTES arrived during a wait
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # the armed deadline, in self._clock() time
        self._linger_until: float | None = None  # set once the exchange is over
        self._lingered = 0
        self._write_until: float | None = None  # the transport's buffer is full since...
        self._eof = False
        self._finished = False
        self.addr = "?"
        self.key = "?"
        self._loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self._loop.create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a TCP stream transport: asyncio's, or uvloop's (which does not subclass Transport)
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.addr = str(peer[0]) if peer else "?"
        self.key = address_key(self.addr)
        if not self._owner.admit(self):
            self._finish()
            transport.close()
            return
        tls = ServerConnection(self._tls_config, rng=self._rng)
        self._session = GatewaySession(tls, self._clock(), self._config.session)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._linger_until is not None:
            self._lingered += len(data)  # the exchange is over: drained, not read
            if self._lingered >= _LINGER_MAX_BYTES:
                self._close()
            return
        if self._session is not None:
            if self._task is not None:  # waiting on the service: keep it, bounded
                self._waited_bytes += len(data)
                if self._waited_bytes >= _WAIT_MAX_BYTES and not self._paused:
                    assert self._transport is not None
                    self._transport.pause_reading()
                    self._paused = True
            self._session.receive_data(data, self._clock())
            self._pump()

    def eof_received(self) -> bool:
        self._eof = True
        if self._linger_until is not None:
            self._close()
        elif self._session is not None:
            self._session.receive_data(b"", self._clock())
            self._pump()
        return True  # keep our half open: the session may still have an alert to send

    def pause_writing(self) -> None:
        self._write_until = self._clock() + self._config.write_timeout_s
        self._arm()

    def resume_writing(self) -> None:
        self._write_until = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_wait()
        self._finish()

    # -- the exchange -------------------------------------------------------------------

    def _pump(self) -> None:
        """Drain the session's events, answering each, then write what it has to send."""
        session, transport = self._session, self._transport
        assert session is not None and transport is not None
        try:
            while self._task is None:
                ev = session.next_event()
                if ev is NEED_DATA:
                    break
                if isinstance(ev, PskLookup):
                    psks = self._exchanges.cached_psks(ev.identities)
                    if psks is None:
                        self._wait(self._lookup(session, ev.identities))
                    else:
                        session.supply_psks(psks)
                elif isinstance(ev, Authenticated):
                    self._owner.verified(self)  # a verified SIM: never evicted
                    self._exchanges.authenticated(session, ev, self.addr)
                elif isinstance(ev, Forward):
                    self._wait(self._exchanges.forward(session, ev))
                elif isinstance(ev, Refuse):
                    self._wait(self._exchanges.refuse(session, ev))
                elif isinstance(ev, Closed):
                    self._exchanges.closed(session, ev, self.addr, self.key)
                    last = session.data_to_send()
                    if last and self._will_half_close():
                        self._cork()
                    self._write(last)
                    self._linger()
                    return
            self._write(session.data_to_send())
            self._arm()
        except Exception:  # a bug in one connection must not take the gateway down
            logging.getLogger("ztp.gateway").exception("connection_failed")
            self.cut_off()

    async def _lookup(self, session: GatewaySession, identities: tuple[bytes, ...]) -> None:
        psks = await self._exchanges.lookup(identities)
        if psks is None:
            session.abort("psk_lookup_failed")
        else:
            session.supply_psks(psks)

    def _wait(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` (it answers the session), reading bounded; then carry on."""
        self._waited_bytes = 0
        self._waiting_coro = coro
        self._task = self._loop.create_task(self._waiting(coro))

    async def _waiting(self, coro: Coroutine[Any, Any, None]) -> None:
        """The wait's task: ``coro``, then the pump, in the same step (a done callback would
        cost a callback object and one more trip through the event loop per exchange)."""
        self._waiting_coro = None
        try:
            await coro
        except asyncio.CancelledError:  # cut off (connection_lost, cut_off): nothing more
            self._task = None
            raise
        except Exception:  # a bug in one connection must not take the gateway down
            self._task = None
            if not self._finished:
                logging.getLogger("ztp.gateway").exception("connection_failed")
                self.cut_off()
            return
        self._task = None
        if self._finished:
            return
        self._resume_reading()
        self._pump()

    def _cancel_wait(self) -> None:
        if self._task is not None:
            self._task.cancel()
            if self._waiting_coro is not None:  # its task never started: nobody awaits it
                self._waiting_coro.close()
                self._waiting_coro = None

    def _resume_reading(self) -> None:
        if self._paused:
            assert self._transport is not None
            self._paused = False
            self._transport.resume_reading()

    def _write(self, data: bytes) -> None:
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _will_half_close(self) -> bool:
        """Whether :meth:`_linger` will half-close (write_eof) after our last bytes."""
        assert self._transport is not None
        return self._config.linger_s > 0 and not self._eof and self._transport.can_write_eof()

    def _cork(self) -> None:
        """Hold our last bytes back for the FIN: with TCP_CORK set, the half-close sends them
        and the FIN in one segment (the kernel tacks the FIN onto an unsent segment) instead
        of two, a packet less per exchange through the TCP stack (issue 14). The half-close
        pushes them out, as does close; they are never held longer than that."""
        if _TCP_CORK is None:
            return
        assert self._transport is not None
        sock = self._transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, 1)
            except OSError:  # the client went: the write and close that follow say so
                pass

    def _linger(self) -> None:
        """Half-close and drain the client until it closes (bounded), so our last bytes
        reach it instead of being discarded by a TCP reset over unread input."""
        transport = self._transport
        assert transport is not None
        if self._config.linger_s <= 0 or self._eof:
            self._close()
            return
        self._linger_until = self._clock() + self._config.linger_s
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except OSError:  # the client already went (ENOTCONN): nothing left to drain
                self._close()
                return
        self._resume_reading()
        self._arm()

    # -- the one deadline ---------------------------------------------------------------

    def _deadline(self) -> float | None:
        """The nearest of the write deadline and the linger's, or else the session's."""
        if self._linger_until is not None:
            session_at = self._linger_until
        else:
            session_at = self._session.timer() if self._session is not None else None
        if self._write_until is None:
            return session_at
        return self._write_until if session_at is None else min(session_at, self._write_until)

    def _arm(self) -> None:
        """Make the timer fire by the nearest deadline (kept when it already does)."""
        if self._finished:
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at <= deadline:
                return
            self._timer.cancel()
        self._timer_at = deadline
        delay = max(0.0, deadline - self._clock())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._finished:
            return
        now = self._clock()
        if self._write_until is not None and now >= self._write_until:
            self._exchanges.metrics.labelled(self._exchanges.metrics.timeouts, "write").inc()
            self.cut_off()
            return
        if self._linger_until is not None:
            if now >= self._linger_until:
                self._close()
            else:
                self._arm()
            return
        session = self._session
        assert session is not None
        deadline = session.timer()
        if deadline is not None and now >= deadline:
            session.handle_timer(now)
            self._pump()
        else:
            self._arm()

    # -- the end ------------------------------------------------------------------------

    def _close(self) -> None:
        """Close after our last bytes (``close`` flushes the buffer; a client that does not
        read it is cut off by the write deadline, which the timer still watches)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() and self._write_until is None:
            self._write_until = self._clock() + self._config.write_timeout_s
            self._arm()
        transport.close()

    def cut_off(self) -> None:
        """End now (shutdown, eviction, a stalled write, a bug): nothing more is sent."""
        self._cancel_wait()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        self._finish()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._owner.finished(self)
        if not self.done.done():
            self.done.set_result(None)
