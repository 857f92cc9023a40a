"""The SAFE2 applet's network job: DNS, TCP, TLS 1.3 PSK and HTTP through SIM Toolkit BIP.

Sans-I/O and passive, as a card is: the job only runs when the terminal hands the card an APDU
(TERMINAL RESPONSE to one of its proactive commands, or an ENVELOPE). It has no clock, no
socket, no sleep; retries wait on a toolkit timer (TIMER MANAGEMENT + TIMER EXPIRATION).

Theory of operation
-------------------
The job is a generator. It yields either a proactive command (``ztp.stk``; the card numbers
it, presents it with ``91xx``, the terminal FETCHes it) and is resumed with the terminal's
``TerminalResponse``, or ``WAIT`` and is resumed with the next ENVELOPE (event download or
timer expiration). One attempt:

    [DNS]  OPEN CHANNEL udp/53 (DNS server address requested, no destination)
           SEND DATA query; (data available) RECEIVE DATA...; CLOSE CHANNEL
    TCP    OPEN CHANNEL tcp host:port
    TLS    SEND DATA ClientHello; (data available) RECEIVE DATA ServerHello..Finished;
           SEND DATA client Finished + HTTP request (one flight)
    HTTP   (data available) RECEIVE DATA...; response complete ->
           SEND DATA close_notify; CLOSE CHANNEL

Each attempt arms timer 1 (watchdog) before its first wait for an event; its expiry ends the
attempt. A transient failure
(unreachable, timeout, link dropped, 5xx ...) closes the channel, starts timer 2 with an
exponential backoff and retries, up to ``RetryPolicy.max_attempts``; a permanent one (TLS
alert, 4xx, malformed or oversized response, unknown name) ends the job at once. The job's
outcome is (status SSSS, result RRRR, body), see ``ResultCode`` and docs/sim.md.

Fewer toolkit APDUs on the way to the answer (each FETCH + TERMINAL RESPONSE pair is ~50 ms
of card time at 9600 bit/s), all within TS 102 223:

- Housekeeping waits for the network. Commands that do not move the exchange forward (arming
  the watchdog, closing the DNS channel) are kept until the job next waits for an event and
  issued then, while the query or the ClientHello is in flight. The watchdog only guards the
  waits: every proactive command is answered by a TERMINAL RESPONSE of the terminal itself.
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
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias

from ztp import stk, tls
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

from ._dns import DnsError, NameNotFound, build_query, parse_answer_ttl
from ._http import BodyTooLarge, HttpError, HttpResponse, ResponseReader, build_request
from ._state import MAX_BODY, AppletStatus

__all__ = ["WAIT", "DnsCache", "ExchangeRecord", "Job", "Request", "ResultCode", "RetryPolicy"]

log = logging.getLogger("ztp.sim")

TIMER_WATCHDOG: Final = 1
TIMER_BACKOFF: Final = 2
TIMER_DNS: Final = 3  # runs while the cached DNS answer is valid
DNS_CACHE_MAX_S: Final = 3600  # a cached answer lives at most this long, whatever its TTL
_MAX_RECEIVE: Final = 237  # channel data that fits one TERMINAL RESPONSE
_MAX_SEND: Final = 240  # channel data per SEND DATA (fits the 255-byte proactive command)
_MAX_TUNNEL_BYTES: Final = 16 * 1024  # per connection: more is a misbehaving server
_TCP_BUFFER: Final = 1400
_UDP_BUFFER: Final = 512
_MAX_POST_BODY: Final = 255


class ResultCode(IntEnum):
    """RRRR values that are not HTTP statuses (HTTP statuses 100-599 are used as they are).

    0xE0xx: TLS alert xx received from the server; 0xE1xx: TLS alert xx sent by the applet.
    """

    OK = 0x0000
    NO_BIP = 0xF001  # the terminal did not announce BIP (TERMINAL PROFILE)
    DNS_NOT_FOUND = 0xF002  # NXDOMAIN / no A record
    DNS_FAILED = 0xF003  # no usable DNS answer
    UNREACHABLE = 0xF004  # OPEN CHANNEL failed (network / remote not reachable)
    TIMEOUT = 0xF005  # the attempt's watchdog timer expired
    LINK_DROPPED = 0xF006  # the connection ended before the response was complete
    HTTP_MALFORMED = 0xF007  # not a well-formed HTTP/1.1 response
    BODY_TOO_LARGE = 0xF008  # body longer than 255 bytes
    INTERRUPTED = 0xF009  # card reset while the request was running
    TERMINAL_ERROR = 0xF00A  # the terminal refused a BIP command unexpectedly
    TLS_ALERT_RECEIVED = 0xE000
    TLS_ALERT_SENT = 0xE100


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: ``max_attempts`` attempts, backoff ``base_s * 2**(n-1)`` up to
    ``cap_s`` between them, each attempt limited by a ``watchdog_s`` toolkit timer."""

    max_attempts: int = 5
    base_s: int = 2
    cap_s: int = 60
    watchdog_s: int = 30

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= 20:
            raise ValueError("max_attempts must be 1..20")
        for v in (self.base_s, self.cap_s, self.watchdog_s):
            if not 1 <= v <= 3600:
                raise ValueError("timer values must be 1..3600 s")

    def backoff_s(self, attempt: int) -> int:
        return min(self.base_s * 2 ** (attempt - 1), self.cap_s)


@dataclass(frozen=True)
class Request:
    """One HTTP exchange of the job."""

    method: str  # "GET" (configuration) or "POST" (telemetry)
    target: str


@dataclass(frozen=True)
class ExchangeRecord:
    """Summary of one TLS connection, for transcripts and benchmarks (no secrets)."""

    method: str
    target: str
    address: str
    port: int
    identity_hex: str
    key_exchange_mode: str | None
    cipher_suite: str | None
    bytes_sent: int
    bytes_received: int
    http_status: int | None
    result: int


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = _Wait()

Yield: TypeAlias = "stk.ProactiveCommand | _Wait"
Resume: TypeAlias = "TerminalResponse | EventDownload | TimerExpiration"
_Gen: TypeAlias = Generator[Yield, Resume, object]


class _Failure(Exception):
    def __init__(self, code: int, transient: bool, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.transient = transient


def _transient_http(status: int) -> bool:
    return status in (408, 425, 429) or status >= 500


@dataclass
class DnsCache:
    """One cached A answer, valid while toolkit timer ``TIMER_DNS`` runs (module docstring)."""

    host: str | None = None
    address: ipaddress.IPv4Address | None = None

    def get(self, host: str) -> ipaddress.IPv4Address | None:
        return self.address if self.host is not None and self.host == host else None

    def put(self, host: str, address: ipaddress.IPv4Address) -> None:
        self.host, self.address = host, address

    def clear(self) -> None:
        self.host = self.address = None


@dataclass
class Config:
    """What the job needs from the card (copied at start; the PSK is never logged)."""

    ef_iccid: bytes
    psk: bytes
    host: str
    port: int
    device_id: bytes
    timers: bool  # the terminal announced TIMER MANAGEMENT + timer expiration


class Job:
    """One SAFE2 network job (config request and/or telemetry delivery).

    Args:
        config: card data. requests: the HTTP exchanges, in order (more may be added with
            :meth:`add`). telemetry: callable returning the telemetry body to POST (read when
            the POST is sent, so the newest data goes). rng: randomness for TLS / DNS ids.
        retry: the retry policy. dns_cache: the card's DNS cache, shared by its jobs (None:
            resolve in every job; ignored without toolkit timers).
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
        dns_cache: DnsCache | None = None,
    ) -> None:
        self._cfg = config
        self._dns_cache = dns_cache if config.timers else None
        self._queue = list(requests)
        self._telemetry = telemetry
        self._rng = rng
        self._retry = retry
        self._open_channels = open_channels
        self.outcome: tuple[int, int, bytes] | None = None  # (SSSS, RRRR, body) once done
        self.delivered_telemetry = False
        self.exchanges: list[ExchangeRecord] = []
        self.attempts = 0
        self.handshakes = 0
        self.sha256_blocks = 0  # crypto work since the card last collected it (cost model)
        self.aes_blocks = 0
        self.phase = "START"
        self._deferred: list[stk.ProactiveCommand] = []  # issued at the next wait
        self._watchdog = False  # timer 1 is running (started, not expired or deactivated)
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

    def _step(self, value: Resume | None) -> Yield | None:
        try:
            if value is None:
                return next(self._gen)
            return self._gen.send(value)
        except StopIteration:
            return None

    def _set_phase(self, phase: str) -> None:
        log.debug("SAFE2 job: %s -> %s", self.phase, phase)
        self.phase = phase

    # ---------------------------------------------------------------- the job

    def _run(self) -> _Gen:
        # A superseded job may have left channels open: close them first.
        for ch in self._open_channels():
            yield from self._issue(CloseChannel(1, ch))
        address = _ip_literal(self._cfg.host)
        cached = False
        if address is None and self._dns_cache is not None:
            address = self._dns_cache.get(self._cfg.host)
            cached = address is not None
        last: _Failure | None = None
        attempt = 0
        while self._queue:
            attempt += 1
            self.attempts = attempt
            self._set_phase(f"ATTEMPT {attempt}")
            try:
                if self._cfg.timers:
                    self._deferred.append(
                        TimerManagement(
                            1, TimerAction.START, TIMER_WATCHDOG, self._retry.watchdog_s
                        )
                    )
                if address is None:
                    address = yield from self._resolve()
                while self._queue:
                    req = self._queue[0]
                    response = yield from self._exchange(address, req, len(self._queue) == 1)
                    self._queue.pop(0)
                    if req.method == "POST":
                        self.delivered_telemetry = True
                    if not self._queue:
                        self.outcome = self._final(response)
            except _Failure as f:
                last = f
                self._deferred.clear()  # the channels are closed below; re-armed next attempt
                if cached and f.code == ResultCode.UNREACHABLE and self._dns_cache is not None:
                    # the name may have moved: resolve it again
                    self._dns_cache.clear()
                    address, cached = None, False
                log.info("SAFE2 job: attempt %d failed: %s (%04X)", attempt, f, f.code)
                for ch in self._open_channels():
                    yield CloseChannel(1, ch)
                if not f.transient or attempt >= self._retry.max_attempts:
                    self.outcome = (AppletStatus.ERROR, f.code, b"")
                    break
                if self._cfg.timers:
                    yield from self._timer(
                        TimerAction.START, TIMER_BACKOFF, self._retry.backoff_s(attempt)
                    )
                    self._set_phase("BACKOFF")
                    while True:
                        env = yield WAIT
                        if isinstance(env, TimerExpiration):
                            if env.timer_id == TIMER_WATCHDOG:
                                self._watchdog = False
                            if env.timer_id == TIMER_BACKOFF:
                                break
        self._deferred.clear()
        if self._watchdog:
            yield from self._timer(TimerAction.DEACTIVATE, TIMER_WATCHDOG)
        if self.outcome is None:  # nothing was queued
            code = last.code if last else ResultCode.OK
            self.outcome = (AppletStatus.ERROR if last else AppletStatus.DONE, code, b"")
        self._set_phase("DONE")
        return None

    def _final(self, response: HttpResponse) -> tuple[int, int, bytes]:
        if response.status in (200, 204):
            if not response.body:
                return AppletStatus.DONE, ResultCode.OK, b""
            return AppletStatus.DATA, ResultCode.OK, response.body
        return AppletStatus.ERROR, response.status, b""

    # ---------------------------------------------------------------- BIP helpers

    def _command(self, cmd: stk.ProactiveCommand) -> Generator[Yield, Resume, TerminalResponse]:
        while True:
            tr = yield cmd
            if isinstance(tr, TerminalResponse):
                return tr
            # An envelope cannot be the answer to a command; the card never does this.
            raise RuntimeError(f"job resumed with {tr!r} while waiting for a TR")

    def _timer(
        self, action: TimerAction, timer_id: int, value_s: int | None = None
    ) -> Generator[Yield, Resume, None]:
        yield from self._issue(TimerManagement(1, action, timer_id, value_s))

    def _issue(self, cmd: stk.ProactiveCommand) -> Generator[Yield, Resume, TerminalResponse]:
        """A command whose TR needs no decision here (timers, CLOSE CHANNEL)."""
        tr = yield from self._command(cmd)
        if isinstance(cmd, TimerManagement) and cmd.timer_id == TIMER_WATCHDOG:
            self._watchdog = cmd.action == TimerAction.START and tr.result.ok
        if isinstance(cmd, TimerManagement) and cmd.timer_id == TIMER_DNS and not tr.result.ok:
            if self._dns_cache is not None:
                self._dns_cache.clear()  # nothing would expire it
        return tr

    def _wait_event(self, channel: int) -> Generator[Yield, Resume, EventDownload]:
        """Next event for ``channel``; the watchdog's expiry ends the attempt."""
        while self._deferred:  # housekeeping while the network works (module docstring)
            yield from self._issue(self._deferred.pop(0))
        while True:
            env = yield WAIT
            if isinstance(env, TimerExpiration):
                if env.timer_id == TIMER_WATCHDOG:
                    self._watchdog = False
                    raise _Failure(ResultCode.TIMEOUT, True, "watchdog expired")
                continue
            if isinstance(env, EventDownload) and env.channel_status.channel == channel:
                return env
            # events for channels we no longer use are stale: ignore them

    def _open(
        self,
        transport: TransportProtocol,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
        port: int,
        buffer_size: int,
        failure: int,
    ) -> Generator[Yield, Resume, tuple[int, TerminalResponse]]:
        cmd = OpenChannel(
            1,
            buffer_size,
            transport,
            port,
            address,
            immediate=True,
            dns_request=address is None,
        )
        tr = yield from self._command(cmd)
        if not tr.result.ok or not tr.channel_status:
            raise _Failure(failure, True, f"OPEN CHANNEL refused: result {tr.result.general:02X}")
        status = tr.channel_status[0]
        if not status.established or not 1 <= status.channel <= 7:
            raise _Failure(failure, True, "OPEN CHANNEL: link not established")
        return status.channel, tr

    def _send(self, channel: int, data: bytes) -> Generator[Yield, Resume, None]:
        while data:
            chunk, data = data[:_MAX_SEND], data[_MAX_SEND:]
            tr = yield from self._command(SendData(1, channel, chunk, immediate=not data))
            if not tr.result.ok:
                raise _Failure(ResultCode.LINK_DROPPED, True, "SEND DATA refused")

    def _receive(self, channel: int, announced: int) -> Generator[Yield, Resume, bytes]:
        """Drain the terminal's Rx buffer: RECEIVE DATA until it reports 0 bytes left."""
        out = bytearray()
        want = announced
        while want:
            tr = yield from self._command(ReceiveData(1, channel, min(want, _MAX_RECEIVE)))
            if not tr.result.ok:
                if out or tr.result.general != stk.GeneralResult.BIP_ERROR:
                    raise _Failure(ResultCode.LINK_DROPPED, True, "RECEIVE DATA refused")
                return b""  # stale event: nothing waiting
            out += tr.channel_data or b""
            if len(out) > _MAX_TUNNEL_BYTES:
                raise _Failure(ResultCode.HTTP_MALFORMED, False, "too much data")
            want = tr.channel_data_length or 0
        return bytes(out)

    # ---------------------------------------------------------------- DNS

    def _resolve(self) -> Generator[Yield, Resume, ipaddress.IPv4Address]:
        self._set_phase("DNS")
        channel, tr = yield from self._open(
            TransportProtocol.UDP_CLIENT_REMOTE, None, 53, _UDP_BUFFER, ResultCode.DNS_FAILED
        )
        try:
            query = build_query(int.from_bytes(self._rng(2), "big"), self._cfg.host)
        except ValueError as e:
            raise _Failure(ResultCode.DNS_NOT_FOUND, False, str(e)) from None
        yield from self._send(channel, query)
        while True:
            ev = yield from self._wait_event(channel)
            if ev.event != stk.Event.DATA_AVAILABLE:
                raise _Failure(ResultCode.DNS_FAILED, True, "DNS channel dropped")
            reply = yield from self._receive(channel, ev.data_length or 0)
            if not reply:
                continue
            try:
                addresses, ttl_s = parse_answer_ttl(reply, query)
            except NameNotFound as e:
                raise _Failure(ResultCode.DNS_NOT_FOUND, False, str(e)) from None
            except DnsError as e:
                # A stray or broken datagram: keep waiting for ours (the watchdog bounds it).
                log.info("SAFE2 job: DNS reply ignored: %s", e)
                continue
            break
        self._deferred.append(CloseChannel(1, channel))  # closed while the ClientHello flies
        if self._dns_cache is not None and ttl_s > 0:
            self._dns_cache.put(self._cfg.host, addresses[0])
            self._deferred.append(
                TimerManagement(1, TimerAction.START, TIMER_DNS, min(ttl_s, DNS_CACHE_MAX_S))
            )
        return addresses[0]

    # ---------------------------------------------------------------- one HTTPS exchange

    def _request_bytes(self, req: Request) -> bytes:
        if req.method == "POST":
            body = self._telemetry() or b""
            ctype = "application/json"
            if body[:1] not in (b"{", b"["):
                ctype = "application/octet-stream"
            return build_request("POST", req.target, self._cfg.host, self._cfg.port, body, ctype)
        return build_request("GET", req.target, self._cfg.host, self._cfg.port)

    def _exchange(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        req: Request,
        last: bool,
    ) -> Generator[Yield, Resume, HttpResponse]:
        self._set_phase(f"TCP {address}:{self._cfg.port}")
        channel, _tr = yield from self._open(
            TransportProtocol.TCP_CLIENT_REMOTE,
            address,
            self._cfg.port,
            _TCP_BUFFER,
            ResultCode.UNREACHABLE,
        )
        server_name = None if _ip_literal(self._cfg.host) else self._cfg.host
        conn = tls.ClientConnection(
            tls.ClientConfig(
                identity=self._cfg.ef_iccid,
                psk=self._cfg.psk,
                server_name=server_name,
                cipher_suites=(tls.CipherSuite.TLS_AES_128_CCM_SHA256,),
                key_exchange_modes=(tls.KeyExchangeMode.PSK_KE,),
                send_key_share=False,
            ),
            rng=self._rng,
        )
        max_body = MAX_BODY if req.method == "GET" else 1024
        reader = ResponseReader(max_body)
        record = _Record(req, str(address), self._cfg.port, self._cfg.ef_iccid.hex())
        dropped = False
        try:
            self._set_phase("TLS")
            conn.start_handshake()
            self.sha256_blocks += 40  # early secret, binder key, binder HMAC, hello hash
            yield from self._flush(conn, channel)
            while reader.response is None:
                ev = yield from self._wait_event(channel)
                if ev.event == stk.Event.DATA_AVAILABLE:
                    data = yield from self._receive(channel, ev.data_length or 0)
                    self.aes_blocks += 2 * (len(data) // 16 + 1)
                    conn.receive_data(data)
                elif not ev.channel_status.established:
                    dropped = True
                    conn.receive_data(b"")
                yield from self._drain(conn, channel, reader, record, req)
                if dropped and reader.response is None:
                    raise _Failure(ResultCode.LINK_DROPPED, True, "connection closed early")
        except _Failure as f:
            record.result = f.code
            self._record(conn, record)
            raise  # the caller closes the channel
        response = reader.response
        record.http_status = response.status
        if response.status not in (200, 204):
            record.result = response.status
        # Done: close_notify (RFC 8446 §6.1), then CLOSE CHANNEL. The server may have closed
        # already; errors here do not change the outcome, which is published first (the card
        # shows it at the next command it presents) when this was the job's last request.
        conn.close()
        tail = conn.data_to_send()
        self._record(conn, record)
        if last and not _transient_http(response.status):
            self.outcome = self._final(response)
            if req.method == "POST":
                self.delivered_telemetry = True
        if tail and not dropped:
            try:
                yield from self._send(channel, tail)
            except _Failure:
                pass
        if channel in self._open_channels():
            yield from self._issue(CloseChannel(1, channel))
        if _transient_http(response.status):
            raise _Failure(response.status, True, f"HTTP {response.status}")
        return response

    def _record(self, conn: tls.ClientConnection, record: _Record) -> None:
        record.bytes_sent = conn.bytes_sent
        record.bytes_received = conn.bytes_received
        self.exchanges.append(record.freeze())

    def _flush(self, conn: tls.ClientConnection, channel: int) -> Generator[Yield, Resume, None]:
        data = conn.data_to_send()
        if data:
            self.aes_blocks += 2 * (len(data) // 16 + 1)
            yield from self._send(channel, data)

    def _drain(
        self,
        conn: tls.ClientConnection,
        channel: int,
        reader: ResponseReader,
        record: _Record,
        req: Request,
    ) -> Generator[Yield, Resume, None]:
        while True:
            try:
                event = conn.next_event()
            except tls.Alert as alert:
                yield from self._flush_quietly(conn, channel)
                code = ResultCode.TLS_ALERT_SENT | int(alert.description)
                raise _Failure(code, False, f"TLS: {type(alert).__name__}") from None
            if event is tls.NEED_DATA:
                break
            if isinstance(event, tls.HandshakeComplete):
                self.handshakes += 1
                self.sha256_blocks += 70  # handshake/master secrets, traffic keys, Finished
                record.key_exchange_mode = event.key_exchange_mode.name
                record.cipher_suite = event.cipher_suite.name
                self._set_phase("HTTP")
                conn.send_application_data(self._request_bytes(req))
            elif isinstance(event, tls.ApplicationData):
                try:
                    reader.receive_data(event.data)
                except BodyTooLarge as e:
                    raise _Failure(ResultCode.BODY_TOO_LARGE, False, str(e)) from None
                except HttpError as e:
                    raise _Failure(ResultCode.HTTP_MALFORMED, False, str(e)) from None
            elif isinstance(event, tls.AlertReceived):
                code = ResultCode.TLS_ALERT_RECEIVED | (event.description & 0xFF)
                # internal_error (80): the server could not look the key up now; retry.
                raise _Failure(code, event.description == 80, f"TLS alert {event.description}")
            elif isinstance(event, tls.ConnectionClosed):
                if reader.response is None:
                    raise _Failure(ResultCode.LINK_DROPPED, True, "TLS closed before response")
                break
        yield from self._flush(conn, channel)

    def _flush_quietly(
        self, conn: tls.ClientConnection, channel: int
    ) -> Generator[Yield, Resume, None]:
        try:
            yield from self._flush(conn, channel)
        except _Failure:
            pass


@dataclass
class _Record:
    req: Request
    address: str
    port: int
    identity_hex: str
    key_exchange_mode: str | None = None
    cipher_suite: str | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    http_status: int | None = None
    result: int = 0

    def freeze(self) -> ExchangeRecord:
        return ExchangeRecord(
            self.req.method,
            self.req.target,
            self.address,
            self.port,
            self.identity_hex,
            self.key_exchange_mode,
            self.cipher_suite,
            self.bytes_sent,
            self.bytes_received,
            self.http_status,
            self.result,
        )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
