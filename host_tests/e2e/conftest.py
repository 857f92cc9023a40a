"""End-to-end tests: the real service, gateway, virtual modem and SIM on loopback, with the
firmware's lib/ provisioning through pyserial on a pty (ztp.demo.Stack).

Each test is bounded by pytest-timeout. The card takes no simulated time (``sim_cost=None``)
and the modem adds no latency, so a run takes about a second; retries use 1-2 s toolkit timers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ztp.demo import Event, Stack, StackOptions
from ztp.sim import RetryPolicy

T = TypeVar("T")


def options(**kw: Any) -> StackOptions:
    kw.setdefault("fast_hashing", True)
    kw.setdefault("sim_cost", None)
    kw.setdefault("retry", RetryPolicy(max_attempts=4, base_s=1, cap_s=2, watchdog_s=10))
    return StackOptions(**kw)


def run(body: Callable[[Stack], Awaitable[T]], listener: Callable[[Stack, Event], None] | None
        = None, **kw: Any) -> T:
    """Bring a stack up with ``options(**kw)``, run ``body(stack)``, tear it down."""

    async def main() -> T:
        stack = Stack(options(**kw))
        if listener is not None:
            stack.listener = lambda ev: listener(stack, ev)
        async with stack:
            return await body(stack)

    return asyncio.run(main())


def host_apdus(events: tuple[Event, ...] | list[Event]) -> list[tuple[bytes, bytes]]:
    return [(bytes(e.info["command"]), bytes(e.info["response"])) for e in events
            if e.source == "modem" and e.kind == "apdu" and e.info.get("source") == "host"]


def gateway_events(events: tuple[Event, ...] | list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.source == "gateway" and e.kind == kind]
