"""Throttling of the token endpoint (issue 13 item 4).

Every login runs one Argon2id verification (tens of milliseconds of CPU on all lanes, also for
an unknown client id), so a stream of wrong secrets slows everything else the process does:
in ``ztp serve`` the gateway's key lookups share the CPU. Two bounds:

- per client address, failed logins: a token bucket (``burst`` failures at once, refilled at
  ``per_minute``); an address without tokens is answered 429 with ``Retry-After`` *before*
  any Argon2 work. Only failures are charged, so a gateway logging in again after its token
  expired never meets the limit. Keyed by address, not by client id: a key per client id would
  let anyone lock a gateway out of its own credential by failing logins with its id.
- at most ``concurrent`` verifications at a time, process-wide; a login waiting more than
  ``wait_s`` for its turn is answered 429 (``Retry-After: 1``).

Thread-safe (handlers run in the thread pool); time is the request's ``now_ms``.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ._errors import TooManyRequests

__all__ = ["LoginLimits", "LoginThrottle"]


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins per client address: ``burst`` at once, ``per_minute`` after that;
    ``concurrent`` Argon2 verifications at a time, waiting at most ``wait_s`` for a turn."""

    burst: int = 10
    per_minute: float = 10.0
    concurrent: int = 1
    wait_s: float = 10.0
    max_addresses: int = 10_000

    def __post_init__(self) -> None:
        if self.burst < 1 or not self.per_minute > 0 or self.concurrent < 1:
            raise ValueError("LoginLimits: burst and concurrent >= 1, per_minute > 0")


class LoginThrottle:
    def __init__(self, limits: LoginLimits | None = None) -> None:
        self.limits = limits or LoginLimits()
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()  # tokens, at_ms
        self._turns = threading.BoundedSemaphore(self.limits.concurrent)

    def __len__(self) -> int:
        """Addresses with a failure on record."""
        return len(self._buckets)

    def _tokens(self, address: str, now_ms: int) -> float:
        state = self._buckets.get(address)
        if state is None:
            return float(self.limits.burst)
        tokens, at_ms = state
        refill = max(0, now_ms - at_ms) / 60_000 * self.limits.per_minute
        return min(float(self.limits.burst), tokens + refill)

    def check(self, address: str, now_ms: int) -> None:
        """Before any work: refuse an address that has used up its failures.

        Raises:
            TooManyRequests: 429, ``retry_after_s`` until the address has a token again.
        """
        with self._lock:
            tokens = self._tokens(address, now_ms)
        if tokens < 1.0:
            wait = (1.0 - tokens) / self.limits.per_minute * 60
            raise TooManyRequests(
                "too many failed logins from this address; retry later",
                retry_after_s=max(1, math.ceil(wait)),
            )

    def failed(self, address: str, now_ms: int) -> None:
        """Charge one failed login to ``address``."""
        with self._lock:
            tokens = max(0.0, self._tokens(address, now_ms) - 1.0)
            self._buckets[address] = (tokens, now_ms)
            self._buckets.move_to_end(address)
            while len(self._buckets) > self.limits.max_addresses:
                self._buckets.popitem(last=False)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold one of the ``concurrent`` verification slots.

        Raises:
            TooManyRequests: no slot within ``wait_s``.
        """
        if not self._turns.acquire(timeout=self.limits.wait_s):
            raise TooManyRequests("too many logins at once; retry later", retry_after_s=1)
        try:
            yield
        finally:
            self._turns.release()
