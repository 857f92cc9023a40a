"""PSK cache for the gateway, invalidated by the service's change feed.

Theory of operation. A handshake needs the candidate keys of the identity in the ClientHello.
The service is the source of truth (``GET /v1/gateway/psks/{identity_hex}``); the gateway keeps
its answers for ``ttl_s``, known and unknown identities alike (so a flood of random identities
costs the service one lookup per identity per window, bounded by ``max_entries``). A poller
reads ``GET /v1/gateway/psk-changes?after=N`` and drops the identities it lists, so a rotated
or revoked key stops working within one poll interval, and a SIM imported while its identity
was cached as unknown is known from the next poll on; when polling fails, entries still
expire after ``ttl_s`` (fail closed: an expired entry is fetched again, and a failed fetch
means no key, never a stale one).

Timing (issue 13 item 2). Whether an identity exists must not show in when the gateway answers.
Known and unknown answers share one TTL, so a cached entry is as fast and lives as long either
way. A lookup that misses the cache returns no earlier than ``miss_floor_s`` after it started:
the service answers a known identity more slowly than an unknown one (it opens the sealed keys
and audits the lookup), and the floor, above the service's usual answer time, hides that.

Races: a lookup that was in flight while its identity was invalidated is answered (it was
correct when asked) but not stored, and later lookups start a fresh fetch instead of joining it.
Concurrent lookups of one identity share one fetch (single flight).

Keys are held as :class:`PskKey`, whose ``repr`` hides the key bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["PskKey", "PskCache", "PskChangeWatcher"]


@dataclass(frozen=True)
class PskKey:
    """One candidate key of an identity: ``tag`` (the key version) and the raw ``key``."""

    tag: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 16 <= len(self.key) <= 64:
            raise ValueError(f"PSK must be 16-64 bytes, got {len(self.key)} (tag {self.tag!r})")


Fetch = Callable[[bytes], Awaitable["tuple[PskKey, ...] | None"]]


class PskCache:
    """Identity -> candidate keys, with TTLs, single-flight fetches and invalidation."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float = 300.0,
        max_entries: int = 100_000,
        miss_floor_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not ttl_s > 0 or miss_floor_s < 0:
            raise ValueError("PskCache: ttl_s must be > 0 and miss_floor_s >= 0")
        self._fetch = fetch
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.miss_floor_s = miss_floor_s
        self._clock = clock
        self._sleep = sleep
        self._entries: OrderedDict[bytes, tuple[float, tuple[PskKey, ...] | None]] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[tuple[PskKey, ...] | None]] = {}
        self._generation: dict[bytes, int] = {}
        self._epoch = 0  # bumped by invalidate_all
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, identity: bytes) -> tuple[bool, tuple[PskKey, ...] | None]:
        """``(True, keys)`` when a fresh entry answers now (a hit, counted; ``keys`` is None
        for an identity cached as unknown), else ``(False, None)``: then await :meth:`lookup`.
        The gateway answers hits without a task: known and unknown identities alike."""
        entry = self._entries.get(identity)
        if entry is not None:
            expires, keys = entry
            if self._clock() < expires:
                self.hits += 1
                self._entries.move_to_end(identity)
                return True, keys
            del self._entries[identity]
        return False, None

    async def lookup(self, identity: bytes) -> tuple[PskKey, ...] | None:
        """The candidate keys of ``identity``, or None when the service does not know it.
        A miss returns ``miss_floor_s`` after the call at the earliest.

        Raises:
            Exception: whatever ``fetch`` raised (the service is unreachable): the caller must
                fail closed (no key), and nothing is cached.
        """
        hit, keys = self.cached(identity)
        if hit:
            return keys
        now = self._clock()
        self.misses += 1
        fut = self._inflight.get(identity)
        if fut is None:
            fut = asyncio.ensure_future(self._load(identity))
            self._inflight[identity] = fut
        # shield: one waiter being cancelled (its connection timed out) must not cancel the
        # fetch the others are waiting on.
        keys = await asyncio.shield(fut)
        wait = now + self.miss_floor_s - self._clock()
        if wait > 0:
            await self._sleep(wait)
        return keys

    async def _load(self, identity: bytes) -> tuple[PskKey, ...] | None:
        gen = self._generation.get(identity, 0)
        epoch = self._epoch
        fut = self._inflight.get(identity)
        try:
            keys = await self._fetch(identity)
        finally:
            if self._inflight.get(identity) is fut:
                self._inflight.pop(identity, None)
        if gen == self._generation.get(identity, 0) and epoch == self._epoch:
            # one TTL for known and unknown identities: how long an entry lives must not tell
            self._entries[identity] = (self._clock() + self.ttl_s, keys or None)
            self._entries.move_to_end(identity)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return keys or None

    def invalidate(self, identities: Iterable[bytes]) -> int:
        """Forget ``identities`` (keys changed). Returns how many cached entries were dropped."""
        dropped = 0
        for identity in identities:
            if self._entries.pop(identity, None) is not None:
                dropped += 1
            self._inflight.pop(identity, None)
            if identity in self._generation or len(self._generation) < self.max_entries:
                self._generation[identity] = self._generation.get(identity, 0) + 1
            else:  # generation table full: fall back to a global invalidation of fetches
                self._epoch += 1
        return dropped

    def invalidate_all(self) -> None:
        """Forget everything (the change feed was reset or could not be followed)."""
        self._entries.clear()
        self._inflight.clear()
        self._generation.clear()
        self._epoch += 1


FetchChanges = Callable[[int], Awaitable["tuple[int, tuple[bytes, ...]]"]]


class PskChangeWatcher:
    """Follows ``/v1/gateway/psk-changes`` and invalidates the cache.

    The first poll only learns the feed position (and empties the cache: anything cached
    before that point may be stale). ``last`` going backwards means the service's feed was
    reset (a restored database): everything is dropped.
    """

    def __init__(self, cache: PskCache, fetch_changes: FetchChanges, interval_s: float = 2.0):
        self.cache = cache
        self._fetch_changes = fetch_changes
        self.interval_s = interval_s
        self.after: int | None = None
        self.failures = 0

    async def poll_once(self) -> tuple[bytes, ...]:
        """Poll once; returns the identities invalidated. Raises what the fetch raised."""
        after = self.after if self.after is not None else 0
        last, identities = await self._fetch_changes(after)
        if self.after is None or last < self.after:
            self.cache.invalidate_all()
        else:
            self.cache.invalidate(identities)
        self.after = last
        return identities

    async def run(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Poll forever every ``interval_s`` (cancel the task to stop)."""
        while True:
            try:
                await self.poll_once()
                self.failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a poller must survive service outages
                self.failures += 1
                if on_error is not None:
                    on_error(exc)
            await asyncio.sleep(self.interval_s)
