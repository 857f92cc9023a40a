"""The event loop a virtual modem runs on: its clock, its tasks, and calls from other threads.

The firmware under test may run in another thread and drive the modem's hardware lines from
there; ``call`` hands such a call to the loop, stamped with the time it was made. Tasks the
modem spawns are kept so ``cancel_all`` can end them when the modem closes; one that fails
is logged, never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["ModemLoop"]

log = logging.getLogger(__name__)


class ModemLoop:
    """The modem's binding to its asyncio loop (unbound until ``bind``)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._t0 = 0.0
        self._tasks: set[asyncio.Task[Any]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` from now on; the modem's clock starts at 0 ms now."""
        self.loop = loop
        self._thread = threading.get_ident()
        self._t0 = loop.time()

    def clock(self) -> float:
        """The loop's clock in seconds."""
        assert self.loop is not None, "modem not started"
        return self.loop.time()

    def now_ms(self) -> int:
        """Milliseconds since ``bind``."""
        return int((self.clock() - self._t0) * 1000)

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args, now_ms)`` on the event loop (``now_ms`` = the time of this call):
        at once from the loop's thread, else thread-safely.

        Raises:
            RuntimeError: the modem was not started.
        """
        if self.loop is None:
            raise RuntimeError("modem not started")
        now_ms = self.now_ms()
        if threading.get_ident() == self._thread:
            fn(*args, now_ms)
        else:
            self.loop.call_soon_threadsafe(fn, *args, now_ms)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a modem task."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("modem: task failed", exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every modem task and wait until they have ended."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
