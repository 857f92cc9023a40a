"""Admission of TCP connections at accept time (sans-I/O), and a log throttle for refusals.

Theory of operation (issue 13). Every accepted connection asks :meth:`ConnectionAdmission.admit`
before any TLS work; the answer is :class:`Admitted` (maybe with a connection to cut off first)
or :class:`Refused`. Two limits, in this order:

1. The per-address connection rate (token bucket, ``RateLimit``): an address without a token is
   refused, whether or not the cap is reached. A token is taken only when a connection is
   admitted, so refusals by the cap do not drain the bucket of the many SIMs behind one
   carrier-NAT address (they retry and must find their tokens).
2. The connection cap (``max_connections``), shared fairly between addresses. Below the cap
   every address may use as many slots as it likes: thousands of SIMs behind one NAT address
   are one address, so no fixed per-address share is imposed. At the cap the address holding
   the most unfinished handshakes gives up its oldest one to a newcomer from an address that
   holds at least two fewer (so shares converge to equal, and an address never evicts itself:
   a lone storm is refused at the cap and retries instead of thrashing). Connections whose
   handshake completed (a verified SIM) are never evicted. A slow SIM keeps its full handshake
   timeout unless the cap forces this choice.

So 1,024 slow connections from one address can hold the cap only until a connection arrives
from another address: it gets a slot at once, at the cost of the flooder's oldest handshake.

Addresses are keys of :func:`address_key`: an IPv4 address, or an IPv6 /64 (one subscriber's
prefix; a per-address limit on single IPv6 addresses would be no limit). Time is a parameter
(``now``, monotonic seconds); connections are any hashable handles the adapter chooses.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from ._limits import RateLimit, RateLimiter

__all__ = [
    "Admitted",
    "ConnectionAdmission",
    "LogThrottle",
    "Refused",
    "address_key",
]


_KEYS: dict[str, str] = {}  # address_key's answers: one parse per address, not per connection
_MAX_KEYS = 4096


def address_key(host: str) -> str:
    """The key one client is limited under: the IPv4 address (also when IPv4-mapped), or the
    IPv6 /64 it belongs to. Anything unparsable is its own key."""
    key = _KEYS.get(host)
    if key is None:
        if len(_KEYS) >= _MAX_KEYS:
            _KEYS.clear()  # many addresses: start over rather than grow
        key = _KEYS[host] = _address_key(host)
    return key


def _address_key(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@dataclass(frozen=True)
class Admitted:
    """Serve the connection; first cut off ``evict`` (a connection handle) if it is not None."""

    evict: Hashable | None = None
    evict_address: str | None = None


@dataclass(frozen=True)
class Refused:
    """Close the connection at once. ``reason``: ``address_rate`` or ``max_connections``."""

    reason: str


class ConnectionAdmission:
    """The connection cap, shared between addresses, and the per-address connection rate."""

    def __init__(
        self, max_connections: int, address_rate: RateLimit, *, max_addresses: int = 100_000
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        self.max_connections = max_connections
        self._rate = RateLimiter(address_rate, max_keys=max_addresses)
        self._address: dict[Hashable, str] = {}  # every admitted connection -> its address key
        # unfinished handshakes per address, oldest first (only addresses holding some)
        self._pending: dict[str, OrderedDict[Hashable, None]] = {}

    @property
    def active(self) -> int:
        """Connections admitted and not yet released."""
        return len(self._address)

    def pending(self, address: str) -> int:
        """Unfinished handshakes of ``address`` (a key of :func:`address_key`)."""
        return len(self._pending.get(address, ()))

    def admit(self, conn: Hashable, address: str, now: float) -> Admitted | Refused:
        """Decide about a new connection ``conn`` from ``address`` at time ``now``.

        On :class:`Admitted` the connection counts against the cap until :meth:`release`;
        an evicted connection is released here already (its owner only has to close it).
        """
        if conn in self._address:
            raise ValueError("connection admitted twice")
        if not self._rate.available(address, now):
            return Refused("address_rate")
        evict: Hashable | None = None
        evict_address = None
        if len(self._address) >= self.max_connections:
            victim = self._victim(address)
            if victim is None:
                return Refused("max_connections")
            evict, evict_address = victim
            self.release(evict)
        self._rate.allow(address, now)
        self._address[conn] = address
        self._pending.setdefault(address, OrderedDict())[conn] = None
        return Admitted(evict, evict_address)

    def _victim(self, address: str) -> tuple[Hashable, str] | None:
        """The oldest unfinished handshake of the address holding the most, if that address
        holds at least two more than ``address`` (after the swap it still holds as many)."""
        mine = self.pending(address)
        top = None
        most = mine + 1
        for other, conns in self._pending.items():
            if len(conns) > most:
                top, most = other, len(conns)
        if top is None:
            return None
        return next(iter(self._pending[top])), top

    def handshake_done(self, conn: Hashable) -> None:
        """``conn`` completed its handshake (a verified SIM): it is never evicted from now on."""
        address = self._address.get(conn)
        if address is None:
            return
        conns = self._pending.get(address)
        if conns is not None:
            conns.pop(conn, None)
            if not conns:
                del self._pending[address]

    def release(self, conn: Hashable) -> None:
        """``conn`` is over (idempotent)."""
        self.handshake_done(conn)
        self._address.pop(conn, None)


class LogThrottle:
    """At most one log line per key per ``interval_s``; counts the lines it held back.

    Used for what an unauthenticated peer can make us log as often as it connects (refusals at
    accept, failed handshakes): the metrics count every event, the log says it once per
    address and interval with the number held back since the last line.
    """

    def __init__(self, interval_s: float = 10.0, max_keys: int = 10_000) -> None:
        if not interval_s >= 0:
            raise ValueError("interval_s must be >= 0")
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._keys: OrderedDict[Hashable, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def allow(self, key: Hashable, now: float) -> int | None:
        """None: do not log (counted). Else log now, reporting the returned number of events
        held back since the previous line of ``key``."""
        state = self._keys.get(key)
        if state is not None and now - state[0] < self.interval_s:
            self._keys[key] = (state[0], state[1] + 1)
            return None
        self._keys[key] = (now, 0)
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return state[1] if state is not None else 0
