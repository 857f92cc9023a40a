"""What the gateway does with a session's events: key lookups, limits, forwarding, accounting.

One :class:`Exchanges` per gateway, shared by its connections. The connection adapter
(``_connection.py``) hands it the events of a :class:`~._session.GatewaySession` that need the
service, the rate limits, the metrics or the log; it answers them on the session. The cheap
answers are plain calls (a PSK cache hit, a verified handshake, the accounting of a close);
the ones that wait on the service are coroutines the adapter runs as a task.

Security properties kept here: the identity forwarded is the session's verified identity; the
per-identity limit is charged only after the binder verified; a PSK cache hit answers known
and unknown identities alike (both are cached, same TTL), and a miss takes the cache's floor;
a lookup that fails closes the connection (no stale key); what an unauthenticated peer can
make us log is throttled per address; secrets are never logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ztp.iccid import IccidError, parse_ef_iccid

from ._admission import LogThrottle
from ._config import GatewayConfig
from ._limits import RateLimiter
from ._log import log_event, logger
from ._metrics import CounterValue, GatewayMetrics
from ._psk_cache import PskCache, PskKey
from ._service import ServiceClient, ServiceError
from ._session import Authenticated, Closed, Forward, GatewaySession, Refuse

__all__ = ["Exchanges"]

Psks = dict[bytes, tuple[PskKey, ...] | None]


class Exchanges:
    """Answers the session events that need more than the socket (see the module docstring)."""

    def __init__(
        self,
        service: ServiceClient,
        config: GatewayConfig,
        metrics: GatewayMetrics,
        psk_cache: PskCache,
        clock: Callable[[], float],
    ) -> None:
        self.service = service
        self.config = config
        self.metrics = metrics
        self.psk_cache = psk_cache
        self.identity_limiter = RateLimiter(config.identity_rate)
        self.log_throttle = LogThrottle(config.log_interval_s)
        self._clock = clock
        # the children every exchange updates, bound once (labels() validates and locks)
        self._lookups = {
            result: metrics.labelled(metrics.psk_lookups, result)
            for result in ("hit", "miss", "unknown", "not_iccid", "error")
        }
        self._forward_seconds = metrics.labelled(metrics.upstream_seconds, "forward")
        self._psk_seconds = metrics.labelled(metrics.upstream_seconds, "psk")
        self._requests: dict[int, CounterValue] = {}  # by status

    # -- PSK lookups --------------------------------------------------------------------

    def cached_psks(self, identities: tuple[bytes, ...]) -> Psks | None:
        """The keys of every identity when the cache answers them all now, else None (then
        await :meth:`lookup`). Identities that are not EF_ICCID values are unknown at once."""
        out: Psks = {}
        results = []
        for identity in identities:
            # only EF_ICCID values are ever cached: a hit needs no parse
            hit, keys = self.psk_cache.cached(identity)
            if hit:
                out[identity] = keys
                results.append("hit" if keys is not None else "unknown")
            elif not _is_iccid(identity):  # no SIM has it: unknown, without asking the service
                out[identity] = None
                results.append("not_iccid")
            else:
                return None
        for result in results:  # counted once the whole ClientHello is answered from here
            self._lookups[result].inc()
        return out

    async def lookup(self, identities: tuple[bytes, ...]) -> Psks | None:
        """The keys of ``identities`` from the cache or the service; None when the service
        cannot be asked (the caller closes the connection: fail closed)."""

        async def one(identity: bytes) -> tuple[PskKey, ...] | None:
            if not _is_iccid(identity):
                self._count_lookup("not_iccid")
                return None  # not an EF_ICCID: no SIM has it, don't ask the service
            hits = self.psk_cache.hits
            keys = await self.psk_cache.lookup(identity)
            hit = self.psk_cache.hits > hits
            self._count_lookup("unknown" if keys is None else "hit" if hit else "miss")
            return keys

        try:
            results = await asyncio.gather(*(one(i) for i in identities))
        except ServiceError as exc:
            self._lookups["error"].inc()
            log_event(
                logging.ERROR,
                "psk_lookup_failed",
                identities=[i.hex() for i in identities],
                error=str(exc),
            )
            return None
        return dict(zip(identities, results, strict=True))

    def _count_lookup(self, result: str) -> None:
        self._lookups[result].inc()

    async def fetch_psks(self, identity: bytes) -> tuple[PskKey, ...] | None:
        """The PSK cache's fetch: the service's answer, timed (without the cache's floor)."""
        started = self._clock()
        try:
            return await self.service.get_psks(identity)
        finally:
            self._psk_seconds.observe(self._clock() - started)

    # -- the exchange -------------------------------------------------------------------

    def authenticated(self, session: GatewaySession, ev: Authenticated, addr: str) -> None:
        """The binder verified: count, log, and charge the per-identity limit (only now: the
        identity travels in clear, so counting earlier would let anyone spend a SIM's quota)."""
        m = self.metrics
        m.labelled(m.handshakes, ev.key_exchange_mode.lower(), ev.cipher_suite).inc()
        m.handshake_seconds.observe(ev.handshake_s)
        allowed = self.identity_limiter.allow(ev.identity, self._clock())
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
            retry = self.identity_limiter.retry_after(ev.identity, self._clock())
            session.refuse_request(429, "rate_limited", f"retry after {retry:.0f} s")

    async def forward(self, session: GatewaySession, ev: Forward) -> None:
        """Send the checked request with the session's verified identity; answer the SIM."""
        identity = session.identity
        assert identity is not None
        request = ev.request
        started = self._clock()
        try:
            resp = await self.service.forward(request, identity, session.psk_tag)
        except ServiceError as exc:
            log_event(
                logging.ERROR,
                "forward_failed",
                identity=request.iccid_hex,
                path=request.path.split("?")[0],
                error=str(exc),
                status=exc.status,
            )
            session.respond(exc.status)
            return
        finally:
            now = self._clock()
            self._forward_seconds.observe(now - started)
        log_event(
            logging.INFO,
            "request_forwarded",
            identity=request.iccid_hex,  # the verified identity (check_request bound it)
            method=request.method,
            path=request.path.split("?")[0],
            status=resp.status,
            body_bytes=len(resp.body),
        )
        session.respond(resp.status, resp.body, resp.content_type)
        self.metrics.request_seconds.observe(now - started)

    async def refuse(self, session: GatewaySession, ev: Refuse) -> None:
        """Answer a refused request (an ICCID mismatch is audited first)."""
        started = self._clock()
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
            retry = self.identity_limiter.retry_after(identity, self._clock())
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
        self.metrics.request_seconds.observe(self._clock() - started)

    def closed(self, session: GatewaySession, ev: Closed, addr: str, key: str) -> None:
        """Count how the connection ended and log it: an answered exchange at debug (its
        ``request_forwarded`` line said it), failures at warning, those of unverified peers
        at most once per address, alert and ``log_interval_s``."""
        m = self.metrics
        status = session.response_status
        if ev.reason == "responded":
            assert status is not None
            requests = self._requests.get(status)
            if requests is None:  # statuses are few (the service's and ours): bounded
                requests = self._requests[status] = m.labelled(m.requests, str(status))
            requests.inc()
        elif session.identity is None:  # the handshake did not complete
            m.labelled(m.handshake_failures, ev.alert or ev.reason).inc()
        else:  # verified SIM, but no complete exchange: alert, EOF, close_notify, timeout
            m.labelled(m.session_failures, ev.alert or ev.reason).inc()
        if ev.reason == "timeout":
            m.labelled(m.timeouts, ev.phase).inc()
            if status is not None:
                m.labelled(m.requests, str(status)).inc()
        fields: dict[str, object] = {}
        if session.identity is None and ev.reason != "responded":
            # unauthenticated: anyone can repeat this as fast as they connect
            suppressed = self.log_throttle.allow(
                ("closed", ev.alert or ev.reason, key), self._clock()
            )
            if suppressed is None:
                return
            fields["suppressed"] = suppressed
        level = logging.DEBUG if ev.reason == "responded" else logging.WARNING
        if not logger.isEnabledFor(level):
            return  # an answered exchange at info: its fields are not even built
        log_event(
            level,
            "connection_closed",
            reason=ev.reason,
            phase=ev.phase,
            alert=ev.alert,
            identity=session.identity.hex() if session.identity else None,
            status=status,
            peer=addr,
            **fields,
        )


def _is_iccid(identity: bytes) -> bool:
    try:
        parse_ef_iccid(identity)
    except IccidError:
        return False
    return True
