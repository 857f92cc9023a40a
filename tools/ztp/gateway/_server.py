"""The asyncio gateway: accepts TCP, runs one :class:`GatewaySession` per connection.

The adapter stays thin (STYLE.md §2): read, feed, drain the events, write. Everything that needs
I/O besides the socket goes through the :class:`ServiceClient` (PSK lookups through the
:class:`PskCache`, forwarding, audit events). Limits enforced here: the per-address connection
rate and the connection cap shared fairly between addresses (at accept, before any TLS work;
``_admission.py``: at the cap the address holding the most unfinished handshakes loses its
oldest one to a newcomer from a smaller address), the per-identity rate (after the binder
verified, through the session's ``Authenticated`` event). What an unauthenticated peer can
make us log as often as it connects (refusals, evictions, failed handshakes) is logged at most
once per address and ``log_interval_s``; the metrics count every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ztp.iccid import IccidError, parse_ef_iccid
from ztp.tls import CipherSuite, KeyExchangeMode, ServerConfig, ServerConnection

from ._admission import ConnectionAdmission, LogThrottle, Refused, address_key
from ._http import NEED_DATA
from ._limits import RateLimit, RateLimiter
from ._log import log_event
from ._metrics import GatewayMetrics
from ._psk_cache import PskCache, PskChangeWatcher, PskKey
from ._service import ServiceClient, ServiceError
from ._session import (
    Authenticated,
    Closed,
    Forward,
    GatewaySession,
    PskLookup,
    Refuse,
    SessionLimits,
)

__all__ = ["Gateway", "GatewayConfig"]

_READ_SIZE = 4096
_LINGER_MAX_BYTES = 64 * 1024
# descriptors besides the SIMs' connections: the service pool (100), the change feed, logs,
# and in `ztp serve` the service's side of the pool
_SPARE_FILES = 256


def _ensure_open_files(need: int) -> None:
    """Raise the soft open-files limit to ``need`` (up to the hard limit): at the cap each
    connection holds a descriptor, and a refused accept (EMFILE) would refuse everyone."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    new = need if hard == resource.RLIM_INFINITY else min(need, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft < need:
        log_event(logging.WARNING, "open_files_limit", limit=soft, needed=need)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything tunable about one gateway. Defaults suit SIMs over cellular."""

    name: str = "gateway"
    session: SessionLimits = field(default_factory=SessionLimits)
    # Shared fairly between addresses (_admission.py); room for a boot storm of slow SIMs
    # behind one carrier-NAT address (start() raises the open-files limit to fit it).
    max_connections: int = 4096
    # A SIM provisions rarely; leave room for its retries, not for a loop.
    identity_rate: RateLimit = field(default_factory=lambda: RateLimit.per_minute(10, burst=5))
    # Loose: thousands of SIMs may share one carrier-NAT address and boot at once (4,000 SIMs
    # are all admitted within about 6 s); it bounds the TLS work one address can cause.
    address_rate: RateLimit = field(default_factory=lambda: RateLimit(per_second=250, burst=2500))
    # refusals, evictions and failed handshakes: one log line per address per interval
    log_interval_s: float = 10.0
    linger_s: float = 2.0  # after our last byte, drain the client briefly so it reads it all
    # close(): stop accepting, let open connections finish for this long, then cut them off
    shutdown_grace_s: float = 5.0
    write_timeout_s: float = 20.0
    # known and unknown identities alike, so that timing does not tell them apart
    psk_ttl_s: float = 300.0
    # a PSK lookup that misses the cache answers no earlier than this after it started: above
    # the service's usual answer time, so that a known identity (keys opened, lookup audited)
    # and an unknown one take as long
    psk_lookup_floor_s: float = 0.05
    psk_poll_interval_s: float = 2.0
    key_exchange_modes: tuple[KeyExchangeMode, ...] = (
        KeyExchangeMode.PSK_DHE_KE,
        KeyExchangeMode.PSK_KE,
    )
    cipher_suites: tuple[CipherSuite, ...] = (
        CipherSuite.TLS_AES_128_CCM_SHA256,
        CipherSuite.TLS_AES_128_GCM_SHA256,
    )
    # binders computed per ClientHello whatever the identity (ServerConfig.max_psk_candidates):
    # at least the most keys a SIM holds (two during a rotation)
    max_psk_candidates: int = 2

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("GatewayConfig.max_connections must be >= 1")
        if self.linger_s < 0 or not self.write_timeout_s > 0:
            raise ValueError("GatewayConfig: linger_s must be >= 0 and write_timeout_s > 0")
        if self.shutdown_grace_s < 0:
            raise ValueError("GatewayConfig.shutdown_grace_s must be >= 0")
        if self.psk_lookup_floor_s < 0 or not self.psk_ttl_s > 0:
            raise ValueError("GatewayConfig: psk_lookup_floor_s must be >= 0, psk_ttl_s > 0")
        if self.log_interval_s < 0:
            raise ValueError("GatewayConfig.log_interval_s must be >= 0")


class Gateway:
    """A TLS 1.3 PSK gateway in front of one service.

    Usage::

        gw = Gateway(ServiceClient(url, token, "gw-1"), GatewayConfig(name="gw-1"))
        host, port = await gw.start("0.0.0.0", 8443)
        ...
        await gw.close()
    """

    def __init__(
        self,
        service: ServiceClient,
        config: GatewayConfig | None = None,
        *,
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.config = config or GatewayConfig()
        self.service = service
        self.metrics = metrics or GatewayMetrics()
        self._clock = clock
        self._rng = rng
        self.psk_cache = PskCache(
            self._fetch_psks,
            ttl_s=self.config.psk_ttl_s,
            miss_floor_s=self.config.psk_lookup_floor_s,
            clock=clock,
        )
        self.watcher = PskChangeWatcher(
            self.psk_cache, service.psk_changes, self.config.psk_poll_interval_s
        )
        self._tls_config = ServerConfig(  # immutable: one for all connections
            psk_lookup=None,
            key_exchange_modes=self.config.key_exchange_modes,
            cipher_suites=self.config.cipher_suites,
            max_psk_candidates=self.config.max_psk_candidates,
        )
        self._identity_limiter = RateLimiter(self.config.identity_rate)
        self._admission = ConnectionAdmission(self.config.max_connections, self.config.address_rate)
        self._log_throttle = LogThrottle(self.config.log_interval_s)
        self._evicted: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False  # close() ran out of grace: connections starting now end at once
        self._cut_now = asyncio.Event()

    @property
    def active(self) -> int:
        """Connections being served (admitted, not yet closed)."""
        return self._admission.active

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0 = any free port) and start following key changes.

        Returns the bound (host, port).
        """
        try:
            await self.watcher.poll_once()
        except ServiceError as exc:  # start anyway; the poller keeps trying
            log_event(logging.WARNING, "psk_changes_failed", error=str(exc))
        self._watch_task = asyncio.create_task(self.watcher.run(self._on_watch_error))
        _ensure_open_files(self.config.max_connections + _SPARE_FILES)
        self._server = await asyncio.start_server(self._accept, host, port, backlog=512)
        sockname = self._server.sockets[0].getsockname()
        log_event(
            logging.INFO,
            "gateway_listening",
            gateway=self.config.name,
            host=sockname[0],
            port=sockname[1],
        )
        return sockname[0], sockname[1]

    async def close(self, grace_s: float | None = None) -> None:
        """Shut down gracefully: stop accepting (the port is free again at once), let open
        connections finish their exchange (handshake, request, answer, close_notify) for up
        to ``grace_s`` (default ``config.shutdown_grace_s``), cut off the rest, stop the
        poller. Idempotent."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        server, self._server = self._server, None
        if server is not None:
            server.close()
            log_event(
                logging.INFO,
                "gateway_closing",
                gateway=self.config.name,
                connections=len(self._conn_tasks),
                grace_s=grace,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await asyncio.sleep(0)  # connections accepted just before close() register their task
        cut_now = asyncio.create_task(self._cut_now.wait())
        try:
            while (
                self._conn_tasks
                and not self._cut_now.is_set()
                and (remaining := deadline - loop.time()) > 0
            ):
                await asyncio.wait(
                    {*self._conn_tasks, cut_now},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            cut_now.cancel()
        self._stopping = True
        cut = list(self._conn_tasks)
        for task in cut:
            task.cancel()
        if cut:
            log_event(
                logging.WARNING, "connections_cut_off", gateway=self.config.name, count=len(cut)
            )
        if self._watch_task is not None:
            self._watch_task.cancel()
        tasks = [*cut, *([self._watch_task] if self._watch_task else [])]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watch_task = None
        if server is not None:
            await server.wait_closed()

    def cut_off(self) -> None:
        """End a running close()'s grace period now (e.g. a second SIGTERM)."""
        self._cut_now.set()

    async def serve_forever(self) -> None:
        assert self._server is not None, "call start() first"
        await self._server.serve_forever()

    def _on_watch_error(self, exc: BaseException) -> None:
        log_event(
            logging.WARNING, "psk_changes_failed", error=str(exc), failures=self.watcher.failures
        )

    # -- connections --------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:  # accepted before close(), started after its grace period
            writer.close()
            return
        self._conn_tasks.add(task)
        peer = writer.get_extra_info("peername")
        addr = str(peer[0]) if peer else "?"
        key = address_key(addr)
        admitted = False
        try:
            self.metrics.connections.inc()
            decision = self._admission.admit(task, key, self._clock())
            if isinstance(decision, Refused):
                self._reject_connection(decision.reason, key)
                return
            admitted = True
            self.metrics.connections_active.set(self._admission.active)
            if decision.evict is not None:
                self._evict(decision.evict, decision.evict_address or "?")  # type: ignore[arg-type]
            await self._serve(reader, writer, addr, key)
        except asyncio.CancelledError:
            # close() cancels the connections left after its grace period, and an eviction
            # cancels its victim. Ending the handler normally keeps asyncio's stream callback
            # from logging the cancellation as an error (Python 3.11).
            pass
        except Exception:  # a bug in one connection must not take the gateway down
            logging.getLogger("ztp.gateway").exception("connection_failed")
        finally:
            if admitted:
                self._admission.release(task)
                self.metrics.connections_active.set(self._admission.active)
            self._evicted.discard(task)
            writer.close()
            self._conn_tasks.discard(task)

    def _reject_connection(self, reason: str, key: str) -> None:
        self.metrics.connections_rejected.labels(reason).inc()
        suppressed = self._log_throttle.allow(("rejected", reason, key), self._clock())
        if suppressed is not None:
            log_event(
                logging.WARNING,
                "connection_rejected",
                reason=reason,
                peer=key,
                suppressed=suppressed,
            )

    def _evict(self, victim: asyncio.Task[None], key: str) -> None:
        """The cap is reached: cut off ``victim`` (the oldest unfinished handshake of the
        address ``key`` holding the most) to make room for a connection from another one."""
        self._evicted.add(victim)
        victim.cancel()
        self.metrics.connections_evicted.inc()
        suppressed = self._log_throttle.allow(("evicted", key), self._clock())
        if suppressed is not None:
            log_event(logging.WARNING, "connection_evicted", peer=key, suppressed=suppressed)

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if data:
            writer.write(data)
            # asyncio.timeout, not wait_for: no extra task per call (the hot path)
            async with asyncio.timeout(self.config.write_timeout_s):
                await writer.drain()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, addr: str, key: str
    ) -> None:
        tls = ServerConnection(self._tls_config, rng=self._rng)
        session = GatewaySession(tls, self._clock(), self.config.session)
        request_started = 0.0
        while True:
            ev = session.next_event()
            await self._write(writer, session.data_to_send())
            if ev is NEED_DATA:
                deadline = session.timer()
                assert deadline is not None
                try:
                    async with asyncio.timeout(max(0.0, deadline - self._clock())):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    session.handle_timer(self._clock())
                    continue
                session.receive_data(data, self._clock())
            elif isinstance(ev, PskLookup):
                psks = await self._lookup(ev.identities)
                if psks is None:
                    session.abort("psk_lookup_failed")
                else:
                    session.supply_psks(psks)
            elif isinstance(ev, Authenticated):
                self._on_authenticated(session, ev, addr)
            elif isinstance(ev, Forward):
                request_started = self._clock()
                await self._forward(session, ev)
                self._responded(session, request_started)
            elif isinstance(ev, Refuse):
                request_started = self._clock()
                await self._refuse(session, ev)
                self._responded(session, request_started)
            elif isinstance(ev, Closed):
                self._on_closed(session, ev, addr, key)
                await self._linger(reader, writer)
                return

    async def _lookup(
        self, identities: tuple[bytes, ...]
    ) -> dict[bytes, tuple[PskKey, ...] | None] | None:
        async def one(identity: bytes) -> tuple[PskKey, ...] | None:
            try:
                parse_ef_iccid(identity)
            except IccidError:
                self.metrics.psk_lookups.labels("not_iccid").inc()
                return None  # not an EF_ICCID: no SIM has it, don't ask the service
            hits = self.psk_cache.hits
            keys = await self.psk_cache.lookup(identity)
            self.metrics.psk_lookups.labels(
                "unknown" if keys is None else "hit" if self.psk_cache.hits > hits else "miss"
            ).inc()
            return keys

        try:
            results = await asyncio.gather(*(one(i) for i in identities))
        except ServiceError as exc:
            self.metrics.psk_lookups.labels("error").inc()
            log_event(
                logging.ERROR,
                "psk_lookup_failed",
                identities=[i.hex() for i in identities],
                error=str(exc),
            )
            return None
        return dict(zip(identities, results, strict=True))

    async def _fetch_psks(self, identity: bytes) -> tuple[PskKey, ...] | None:
        """The PSK cache's fetch: the service's answer, timed (without the cache's floor)."""
        started = self._clock()
        try:
            return await self.service.get_psks(identity)
        finally:
            self.metrics.upstream_seconds.labels("psk").observe(self._clock() - started)

    def _on_authenticated(self, session: GatewaySession, ev: Authenticated, addr: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._admission.handshake_done(task)  # a verified SIM: never evicted
        self.metrics.handshakes.labels(ev.key_exchange_mode.lower(), ev.cipher_suite).inc()
        self.metrics.handshake_seconds.observe(ev.handshake_s)
        allowed = self._identity_limiter.allow(ev.identity, self._clock())
        log_event(
            logging.INFO,
            "handshake_complete",
            identity=ev.identity.hex(),
            key_tag=ev.psk_tag,
            mode=ev.key_exchange_mode,
            suite=ev.cipher_suite,
            sni=ev.server_name,
            peer=addr,
            rate_limited=not allowed,
        )
        if not allowed:
            retry = self._identity_limiter.retry_after(ev.identity, self._clock())
            session.refuse_request(429, "rate_limited", f"retry after {retry:.0f} s")

    async def _forward(self, session: GatewaySession, ev: Forward) -> None:
        assert session.identity is not None
        started = self._clock()
        try:
            resp = await self.service.forward(ev.request, session.identity, session.psk_tag)
        except ServiceError as exc:
            log_event(
                logging.ERROR,
                "forward_failed",
                identity=session.identity.hex(),
                path=ev.request.path.split("?")[0],
                error=str(exc),
                status=exc.status,
            )
            session.respond(exc.status)
            return
        finally:
            self.metrics.upstream_seconds.labels("forward").observe(self._clock() - started)
        log_event(
            logging.INFO,
            "request_forwarded",
            identity=session.identity.hex(),
            method=ev.request.method,
            path=ev.request.path.split("?")[0],
            status=resp.status,
            body_bytes=len(resp.body),
        )
        session.respond(resp.status, resp.body, resp.content_type)

    async def _refuse(self, session: GatewaySession, ev: Refuse) -> None:
        rej = ev.refusal
        identity = session.identity or b""
        log_event(
            logging.WARNING,
            "request_refused",
            identity=identity.hex(),
            status=rej.status,
            kind=rej.kind,
            reason=rej.reason,
        )
        extra: tuple[tuple[str, str], ...] = ()
        if rej.kind == "rate_limited" or rej.detail.get("rate_limited"):
            self.metrics.rate_limited.inc()
        if rej.kind == "rate_limited":
            retry = self._identity_limiter.retry_after(identity, self._clock())
            extra = (("Retry-After", str(max(1, round(retry)))),)
        if rej.kind == "iccid_mismatch":
            try:
                await self.service.post_event(rej.kind, identity, rej.detail)
            except ServiceError as exc:
                log_event(
                    logging.ERROR,
                    "audit_failed",
                    identity=identity.hex(),
                    kind=rej.kind,
                    error=str(exc),
                )
        session.respond(rej.status, extra_headers=extra)

    def _responded(self, session: GatewaySession, started: float) -> None:
        del session
        self.metrics.request_seconds.observe(self._clock() - started)

    def _on_closed(self, session: GatewaySession, ev: Closed, addr: str, key: str) -> None:
        identity = session.identity.hex() if session.identity else None
        if ev.reason == "responded":
            assert session.response_status is not None
            self.metrics.requests.labels(str(session.response_status)).inc()
        elif session.identity is None:  # the handshake did not complete
            self.metrics.handshake_failures.labels(ev.alert or ev.reason).inc()
        else:  # verified SIM, but no complete exchange: alert, EOF, close_notify, timeout
            self.metrics.session_failures.labels(ev.alert or ev.reason).inc()
        if ev.reason == "timeout":
            self.metrics.timeouts.labels(ev.phase).inc()
            if session.response_status is not None:
                self.metrics.requests.labels(str(session.response_status)).inc()
        fields: dict[str, object] = {}
        if session.identity is None and ev.reason != "responded":
            # unauthenticated: anyone can repeat this as fast as they connect
            suppressed = self._log_throttle.allow(
                ("closed", ev.alert or ev.reason, key), self._clock()
            )
            if suppressed is None:
                return
            fields["suppressed"] = suppressed
        level = logging.INFO if ev.reason == "responded" else logging.WARNING
        log_event(
            level,
            "connection_closed",
            reason=ev.reason,
            phase=ev.phase,
            alert=ev.alert,
            identity=identity,
            status=session.response_status,
            peer=addr,
            **fields,
        )

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close and read until the client closes (bounded), so our last bytes reach it
        instead of being discarded by a TCP reset over unread input."""
        if self.config.linger_s <= 0:
            return
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
        drained = 0
        deadline = self._clock() + self.config.linger_s
        with contextlib.suppress(TimeoutError, OSError):
            while drained < _LINGER_MAX_BYTES:
                async with asyncio.timeout(max(0.0, deadline - self._clock())):
                    chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    break
                drained += len(chunk)
