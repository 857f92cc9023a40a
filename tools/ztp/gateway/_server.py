"""The asyncio gateway: listens, admits connections, and shuts down gracefully.

The parts, by responsibility: :class:`Gateway` (here) owns the listening socket, the
connection cap and per-address rate (``_admission.py``: at accept, before any TLS work; at the
cap the address holding the most unfinished handshakes loses its oldest one to a newcomer from
a smaller address), the PSK cache and its change feed, and the shutdown. Each accepted
connection is a :class:`~._connection.GatewayConnection` (the thin asyncio adapter around the
sans-I/O :class:`~._session.GatewaySession`), whose events that need the service, the
per-identity limit, the metrics or the log are answered by the gateway's
:class:`~._exchange.Exchanges`. What an unauthenticated peer can make us log as often as it
connects (refusals, evictions, failed handshakes) is logged at most once per address and
``log_interval_s``; the metrics count every one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from ._admission import ConnectionAdmission, Refused
from ._config import GatewayConfig
from ._connection import GatewayConnection
from ._exchange import Exchanges
from ._log import log_event
from ._metrics import GatewayMetrics
from ._psk_cache import PskCache, PskChangeWatcher, PskKey
from ._service import ServiceClient, ServiceError

__all__ = ["Gateway", "GatewayConfig"]

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
        self._exchanges = Exchanges(service, self.config, self.metrics, self.psk_cache, clock)
        self._tls_config = self.config.tls_config()  # immutable: one for all connections
        self._admission = ConnectionAdmission(self.config.max_connections, self.config.address_rate)
        # read when scraped: nothing to update per connection
        self.metrics.connections_active.set_function(lambda: self._admission.active)
        self._server: asyncio.Server | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._connections: set[GatewayConnection] = set()
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
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_connection, host, port, backlog=512)
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
                connections=len(self._connections),
                grace_s=grace,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        await asyncio.sleep(0)  # connections accepted just before close() are made
        cut_now = asyncio.create_task(self._cut_now.wait())
        try:
            while (
                self._connections
                and not self._cut_now.is_set()
                and (remaining := deadline - loop.time()) > 0
            ):
                await asyncio.wait(
                    {*(c.done for c in self._connections), cut_now},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            cut_now.cancel()
        self._stopping = True
        cut = list(self._connections)
        for conn in cut:
            conn.cut_off()
        if cut:
            log_event(
                logging.WARNING, "connections_cut_off", gateway=self.config.name, count=len(cut)
            )
        if self._watch_task is not None:
            self._watch_task.cancel()
            await asyncio.gather(self._watch_task, return_exceptions=True)
        self._watch_task = None
        await asyncio.sleep(0)  # the cut transports report their end
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

    async def _fetch_psks(self, identity: bytes) -> tuple[PskKey, ...] | None:
        return await self._exchanges.fetch_psks(identity)

    # -- connections (ConnectionOwner) --------------------------------------------------

    def _new_connection(self) -> GatewayConnection:
        return GatewayConnection(
            self, self._exchanges, self.config, self._tls_config, self._clock, self._rng
        )

    def admit(self, conn: GatewayConnection) -> bool:
        """At accept, before any TLS work: the per-address rate, then the fair share of the
        connection cap (maybe cutting off another address's oldest unfinished handshake)."""
        if self._stopping:  # accepted before close(), made after its grace period
            return False
        self.metrics.connections.inc()
        decision = self._admission.admit(conn, conn.key, self._clock())
        if isinstance(decision, Refused):
            self._reject(decision.reason, conn.key)
            return False
        self._connections.add(conn)
        if decision.evict is not None:
            self._evict(decision.evict, decision.evict_address or "?")  # type: ignore[arg-type]
        return True

    def verified(self, conn: GatewayConnection) -> None:
        self._admission.handshake_done(conn)  # a verified SIM: never evicted

    def finished(self, conn: GatewayConnection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self._admission.release(conn)

    def _reject(self, reason: str, key: str) -> None:
        self.metrics.labelled(self.metrics.connections_rejected, reason).inc()
        suppressed = self._exchanges.log_throttle.allow(("rejected", reason, key), self._clock())
        if suppressed is not None:
            log_event(
                logging.WARNING,
                "connection_rejected",
                reason=reason,
                peer=key,
                suppressed=suppressed,
            )

    def _evict(self, victim: GatewayConnection, key: str) -> None:
        """The cap is reached: cut off ``victim`` (the oldest unfinished handshake of the
        address ``key`` holding the most) to make room for a connection from another one."""
        victim.cut_off()
        self.metrics.connections_evicted.inc()
        suppressed = self._exchanges.log_throttle.allow(("evicted", key), self._clock())
        if suppressed is not None:
            log_event(logging.WARNING, "connection_evicted", peer=key, suppressed=suppressed)
