"""The SAFE2 applet's network job: DNS, TCP, TLS 1.3 PSK and HTTP through SIM Toolkit BIP.

Sans-I/O and passive, as a card is: the job only runs when the terminal hands the card an APDU
(TERMINAL RESPONSE to one of its proactive commands, or an ENVELOPE). It has no clock, no
socket, no sleep; retries wait on a toolkit timer (TIMER MANAGEMENT + TIMER EXPIRATION).

Theory of operation
-------------------
The job is a generator. It yields either a proactive command (``ztp.stk``; the card numbers
it, presents it with ``91xx``, the terminal FETCHes it) and is resumed with the terminal's
``TerminalResponse``, or ``WAIT`` and is resumed with the next ENVELOPE (event download or
timer expiration). Its states and their transitions are one table (``_job_state.py``). One
attempt:

    [DNS]  OPEN CHANNEL udp/53 (DNS server address requested, no destination)
           SEND DATA query; (data available) RECEIVE DATA...; CLOSE CHANNEL
    HTTPS  one ``HttpsExchange`` per queued request (``_https.py``)

Each attempt arms timer 1 (watchdog) before its first wait for an event; its expiry ends the
attempt. A transient failure (unreachable, timeout, link dropped, 5xx ...) closes the channel,
starts timer 2 with an exponential backoff and retries, up to ``RetryPolicy.max_attempts``; a
permanent one (TLS alert, 4xx, malformed or oversized response, unknown name) ends the job at
once. The job's outcome is (status SSSS, result RRRR, body), see ``ResultCode`` and
docs/sim.md.

Fewer toolkit APDUs on the way to the answer (each FETCH + TERMINAL RESPONSE pair is ~50 ms
of card time at 9600 bit/s), all within TS 102 223:

- Housekeeping waits for the network (``BipLink.defer``). The watchdog only guards the waits:
  every proactive command is answered by a TERMINAL RESPONSE of the terminal itself.
- The DNS answer is kept across requests (``DnsCache``, the card's transient memory) for its
  TTL, at most ``DNS_CACHE_MAX_S``: toolkit timer 3 is started with that value and its TIMER
  EXPIRATION drops the entry, as does a card reset or a new TERMINAL PROFILE (the terminal's
  timers are gone) or an OPEN CHANNEL to the cached address failing. A terminal without
  timers gets no caching: the card has no clock of its own to honour a TTL with.
- The outcome is published as soon as the last response is complete and checked; close_notify,
  CLOSE CHANNEL and the watchdog's deactivation follow while the device already reads it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Generator
from typing import Final

from ztp import stk
from ztp.stk import CloseChannel, TimerAction, TimerManagement, TransportProtocol

from ._bip import TIMER_BACKOFF, TIMER_DNS, TIMER_WATCHDOG, BipLink, Resume, Step, Yield
from ._dns import DnsCache, DnsError, NameNotFound, build_query, parse_answer_ttl
from ._http import HttpResponse
from ._https import HttpsExchange, transient_http
from ._job_state import TRANSITIONS, JobState
from ._request import (
    Config,
    CryptoWork,
    ExchangeRecord,
    JobFailure,
    Request,
    ResultCode,
    RetryPolicy,
)
from ._state import AppletStatus, ip_literal

__all__ = ["DNS_CACHE_MAX_S", "Job"]

log = logging.getLogger("ztp.sim")

DNS_CACHE_MAX_S: Final = 3600  # a cached answer lives at most this long, whatever its TTL
_UDP_BUFFER: Final = 512


class Job:
    """One SAFE2 network job (config request and/or telemetry delivery).

    Args:
        config: card data. requests: the HTTP exchanges, in order (more may be added with
            :meth:`add`). telemetry: callable returning the telemetry body to POST (read when
            the POST is sent, so the newest data goes). rng: randomness for TLS / DNS ids.
        retry: the retry policy. open_channels: the BIP channels open now.
        work: the card's crypto tally (the job adds to it). dns_cache: the card's DNS cache,
            shared by its jobs (None: resolve in every job; ignored without toolkit timers).
    """

    def __init__(
        self,
        config: Config,
        requests: list[Request],
        *,
        telemetry: Callable[[], bytes | None],
        rng: Callable[[int], bytes],
        retry: RetryPolicy,
        open_channels: Callable[[], tuple[int, ...]],
        work: CryptoWork,
        dns_cache: DnsCache | None = None,
    ) -> None:
        self._cfg = config
        self._dns_cache = dns_cache if config.timers else None
        self._queue = list(requests)
        self._telemetry = telemetry
        self._rng = rng
        self._retry = retry
        self._work = work
        self._link = BipLink(open_channels, self._dns_cache)
        self.outcome: tuple[int, int, bytes] | None = None  # (SSSS, RRRR, body) once done
        self.delivered_telemetry = False
        self.exchanges: list[ExchangeRecord] = []
        self.attempts = 0
        self.state = JobState.START
        self._address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
        self._gen = self._run()

    # ---------------------------------------------------------------- driver interface

    def start(self) -> Yield | None:
        """First step; returns what the job wants (a command or WAIT), None when done."""
        return self._step(None)

    def resume(self, value: Resume) -> Yield | None:
        """Resume with the TR of the yielded command, or an ENVELOPE after WAIT."""
        return self._step(value)

    def cancel(self) -> None:
        self._gen.close()

    def add(self, request: Request) -> None:
        if request not in self._queue:
            self._queue.append(request)

    @property
    def requests(self) -> tuple[Request, ...]:
        return tuple(self._queue)

    @property
    def handshakes(self) -> int:
        """TLS handshakes completed (a record gets its cipher suite at HandshakeComplete)."""
        return sum(1 for r in self.exchanges if r.cipher_suite is not None)

    def _step(self, value: Resume | None) -> Yield | None:
        try:
            if value is None:
                return next(self._gen)
            return self._gen.send(value)
        except StopIteration:
            return None

    def _set_state(self, new: JobState) -> None:
        """The one place the state changes (``_job_state.TRANSITIONS``)."""
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"SAFE2 job: {self.state.name} -> {new.name} is not a transition")
        log.debug("SAFE2 job: %s -> %s (attempt %d)", self.state.name, new.name, self.attempts)
        self.state = new

    # ---------------------------------------------------------------- the job

    def _run(self) -> Step:
        # A superseded job may have left channels open: close them first.
        yield from self._link.close_all(now=False)
        self._address = ip_literal(self._cfg.host)
        cached = False
        if self._address is None and self._dns_cache is not None:
            self._address = self._dns_cache.get(self._cfg.host)
            cached = self._address is not None
        last: JobFailure | None = None
        while self._queue:
            self.attempts += 1
            try:
                yield from self._attempt()
            except JobFailure as f:
                last = f
                self._set_state(JobState.RECOVER)
                self._link.drop_deferred()  # the channels are closed below; re-armed next time
                if cached and f.code == ResultCode.UNREACHABLE and self._dns_cache is not None:
                    self._dns_cache.clear()  # the name may have moved: resolve it again
                    self._address, cached = None, False
                log.info("SAFE2 job: attempt %d failed: %s (%04X)", self.attempts, f, f.code)
                yield from self._link.close_all(now=True)
                if not f.transient or self.attempts >= self._retry.max_attempts:
                    self.outcome = (AppletStatus.ERROR, f.code, b"")
                    break
                if self._cfg.timers:
                    backoff_s = self._retry.backoff_s(self.attempts)
                    yield from self._link.timer(TimerAction.START, TIMER_BACKOFF, backoff_s)
                    self._set_state(JobState.BACKOFF)
                    yield from self._link.wait_timer(TIMER_BACKOFF)
        self._set_state(JobState.FINISH)
        self._link.drop_deferred()
        if self._link.watchdog:
            yield from self._link.timer(TimerAction.DEACTIVATE, TIMER_WATCHDOG)
        if self.outcome is None:  # nothing was queued
            code = last.code if last else ResultCode.OK
            self.outcome = (AppletStatus.ERROR if last else AppletStatus.DONE, code, b"")
        self._set_state(JobState.DONE)
        return None

    def _attempt(self) -> Step:
        """One attempt: resolve when needed, then every queued request in turn."""
        if self._cfg.timers:
            self._link.defer(
                TimerManagement(1, TimerAction.START, TIMER_WATCHDOG, self._retry.watchdog_s)
            )
        if self._address is None:
            self._address = yield from self._resolve()
        while self._queue:
            req, last = self._queue[0], len(self._queue) == 1
            exchange = HttpsExchange(
                self._link,
                self._cfg,
                req,
                self._address,
                body=self._telemetry,
                rng=self._rng,
                work=self._work,
                enter=self._set_state,
                on_response=lambda r, req=req, last=last: self._published(req, r, last),
                exchanges=self.exchanges,
            )
            response = yield from exchange.run()
            self._queue.pop(0)
            if req.method == "POST":
                self.delivered_telemetry = True
            if not self._queue:
                self.outcome = _final(response)

    def _published(self, req: Request, response: HttpResponse, last: bool) -> None:
        """The response of ``req`` is complete: the job's outcome, when it was the last one,
        is shown before the teardown (module docstring)."""
        if last and not transient_http(response.status):
            self.outcome = _final(response)
            if req.method == "POST":
                self.delivered_telemetry = True

    # ---------------------------------------------------------------- DNS

    def _resolve(self) -> Generator[Yield, Resume, ipaddress.IPv4Address]:
        self._set_state(JobState.RESOLVE)
        link = self._link
        channel = yield from link.open(
            TransportProtocol.UDP_CLIENT_REMOTE, None, 53, _UDP_BUFFER, ResultCode.DNS_FAILED
        )
        try:
            query = build_query(int.from_bytes(self._rng(2), "big"), self._cfg.host)
        except ValueError as e:
            raise JobFailure(ResultCode.DNS_NOT_FOUND, False, str(e)) from None
        yield from link.send(channel, query)
        while True:
            ev = yield from link.wait_event(channel)
            if ev.event != stk.Event.DATA_AVAILABLE:
                raise JobFailure(ResultCode.DNS_FAILED, True, "DNS channel dropped")
            reply = yield from link.receive(channel, ev.data_length or 0)
            if not reply:
                continue
            try:
                addresses, ttl_s = parse_answer_ttl(reply, query)
            except NameNotFound as e:
                raise JobFailure(ResultCode.DNS_NOT_FOUND, False, str(e)) from None
            except DnsError as e:
                # A stray or broken datagram: keep waiting for ours (the watchdog bounds it).
                log.info("SAFE2 job: DNS reply ignored: %s", e)
                continue
            break
        link.defer(CloseChannel(1, channel))  # closed while the ClientHello flies
        if self._dns_cache is not None and ttl_s > 0:
            self._dns_cache.put(self._cfg.host, addresses[0])
            link.defer(
                TimerManagement(1, TimerAction.START, TIMER_DNS, min(ttl_s, DNS_CACHE_MAX_S))
            )
        return addresses[0]


def _final(response: HttpResponse) -> tuple[int, int, bytes]:
    if response.status in (200, 204):
        if not response.body:
            return AppletStatus.DONE, ResultCode.OK, b""
        return AppletStatus.DATA, ResultCode.OK, response.body
    return AppletStatus.ERROR, response.status, b""
