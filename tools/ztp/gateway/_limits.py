"""Rate limits for the gateway: token buckets keyed by identity or address (sans-I/O).

Two uses (issue 6):
- per identity: charged only after the identity's binder verified. The identity travels in
  clear in the ClientHello, so charging earlier would let anyone exhaust a victim SIM's quota
  by sending ClientHellos with the victim's ICCID;
- per address: charged on every admitted TCP connection (``_admission.py``), deliberately loose
  because SIMs reach us from a few operator NAT addresses (thousands of SIMs behind one address).

Time is a parameter (``now`` in seconds, monotonic), so tests drive it without sleeping. The
number of tracked keys is capped: the least recently used bucket is dropped first, and a dropped
bucket would have refilled anyway unless it was used within ``burst / rate`` seconds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["RateLimit", "RateLimiter"]


@dataclass(frozen=True)
class RateLimit:
    """``burst`` events at once, refilled at ``per_second`` events per second."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"RateLimit.per_second must be > 0, got {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"RateLimit.burst must be >= 1, got {self.burst}")

    @classmethod
    def per_minute(cls, count: float, burst: int | None = None) -> RateLimit:
        return cls(count / 60.0, burst if burst is not None else max(1, int(count)))


class RateLimiter:
    """Token buckets keyed by any hashable value."""

    def __init__(self, limit: RateLimit, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: Hashable, now: float) -> float:
        state = self._buckets.get(key)
        if state is None:
            return float(self.limit.burst)
        tokens, at = state
        elapsed = max(0.0, now - at)  # a clock that steps back must not mint tokens
        return min(float(self.limit.burst), tokens + elapsed * self.limit.per_second)

    def available(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` has a token at time ``now`` (nothing is taken)."""
        return self._tokens(key, now) >= 1.0

    def allow(self, key: Hashable, now: float) -> bool:
        """Take one token for ``key`` at time ``now``; False (nothing taken) when empty."""
        tokens = self._tokens(key, now)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` has a token again (0 when it has one now)."""
        missing = 1.0 - self._tokens(key, now)
        return max(0.0, missing / self.limit.per_second)
