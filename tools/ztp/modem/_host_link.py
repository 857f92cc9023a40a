"""The modem's UART as the host reaches it: a pseudo-terminal and/or a TCP socket.

Bytes from the host arrive in ``feed`` and wait in order for ``next_input``, which hands
them over at the UART's pace; while the modem is held in reset (``silent``) or still booting
(``deaf_until``) they are ignored. Bytes for the host queue in ``send`` and leave in order
from ``run`` at the UART's pace, through the UART byte faults (``_faults.UartLine``), unless
the modem is held silent. With no host connected they are dropped, as a UART with nothing on
the other end would.

pty: raw mode, non-blocking master; we keep the slave open so the master never sees EIO
between two openers. TCP: one client at a time, a new client takes over (pyserial
``socket://host:port``).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import tty
from collections.abc import Awaitable, Callable

from ztp.modem._faults import UartLine

__all__ = ["HostLink"]

log = logging.getLogger(__name__)


class HostLink:
    """The host side of the UART (an asyncio adapter).

    Args:
        uart: byte faults on the way to the host.
        byte_time_s: seconds per byte at the current UART rate (0: no pacing).
        clock: the event loop's clock in seconds.
        notify: the modem's observer hook ("at_rx", "at_tx" with the bytes).
    """

    def __init__(
        self,
        uart: UartLine,
        *,
        byte_time_s: Callable[[], float],
        clock: Callable[[], float],
        notify: Callable[..., None],
    ) -> None:
        self._uart = uart
        self._byte_time_s, self._clock, self._notify = byte_time_s, clock, notify
        self.silent = False  # GSM_RESETN high: deaf and silent
        self.deaf_until = 0.0  # booting: input ignored until this clock time
        self._in: asyncio.Queue[bytes] = asyncio.Queue()
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._write_fn: Callable[[bytes], Awaitable[None]] | None = None
        self._pty_master: int | None = None
        self._pty_slave: int | None = None
        self._servers: list[asyncio.AbstractServer] = []

    # ------------------------------------------------------------------ from the host
    def feed(self, data: bytes) -> None:
        """Bytes from the host (the transports call this)."""
        if self.silent:
            log.info("modem: %d bytes while held in reset, ignored", len(data))
            return
        if self._clock() < self.deaf_until:
            log.info("modem: %d bytes while booting, ignored", len(data))
            return
        self._notify("at_rx", data=data)
        self._in.put_nowait(data)

    async def next_input(self) -> bytes:
        """The next bytes from the host, once the UART has carried them (paced)."""
        data = await self._in.get()
        pace = self._byte_time_s() * len(data)
        if pace:
            await asyncio.sleep(pace)
        return data

    def drop_input(self) -> None:
        """Bytes not yet taken are lost (the modem went down)."""
        while not self._in.empty():
            self._in.get_nowait()

    # ------------------------------------------------------------------ toward the host
    def send(self, data: bytes) -> None:
        """Queue bytes for the host."""
        self._out.put_nowait(data)

    def drop_pending(self) -> None:
        """Bytes not yet sent are lost (the modem went into reset)."""
        while not self._out.empty():
            self._out.get_nowait()
            self._out.task_done()

    async def drained(self) -> None:
        """Wait until everything queued has been written (or dropped)."""
        await self._out.join()

    async def run(self) -> None:
        """Write the queued bytes, paced and through the byte faults (a modem task)."""
        while True:
            data = await self._out.get()
            try:
                if self.silent:
                    continue  # held in reset: nothing leaves the UART
                data = self._uart.corrupt(data)
                per_byte = self._byte_time_s()
                step = 64 if per_byte else len(data)
                for i in range(0, len(data), max(step, 1)):
                    chunk = data[i:i + step]
                    if per_byte:
                        await asyncio.sleep(per_byte * len(chunk))
                    self._notify("at_tx", data=chunk)
                    if self._write_fn is not None:
                        await self._write_fn(chunk)
            except OSError as err:
                log.info("modem: host write failed: %s", err)
            finally:
                self._out.task_done()

    # ------------------------------------------------------------------ transports
    def serve_pty(self) -> str:
        """Expose the UART on a new pseudo-terminal (raw mode); returns the slave path."""
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)
        flags = fcntl.fcntl(master, fcntl.F_GETFL)
        fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self._pty_master, self._pty_slave = master, slave
        path = os.ttyname(slave)

        def readable() -> None:
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EIO: no process has the slave open (we keep one fd, rare)
                return
            if data:
                self.feed(data)

        loop.add_reader(master, readable)

        def _resolve(fut: asyncio.Future[None]) -> None:
            if not fut.done():
                fut.set_result(None)

        async def write(data: bytes) -> None:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(master, view)
                    view = view[n:]
                except BlockingIOError:
                    fut: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(master, _resolve, fut)
                    try:
                        await fut
                    finally:
                        loop.remove_writer(master)

        self._write_fn = write
        log.info("modem: UART on %s", path)
        return path

    async def serve_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Expose the UART on TCP; returns the bound (host, port)."""

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            async def write(data: bytes) -> None:
                writer.write(data)
                await writer.drain()

            self._write_fn = write
            try:
                while data := await reader.read(4096):
                    self.feed(data)
            except OSError:
                pass
            finally:
                if self._write_fn is write:
                    self._write_fn = None
                writer.close()

        server = await asyncio.start_server(client, host, port)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        log.info("modem: UART on tcp %s:%d", bound[0], bound[1])
        return bound[0], bound[1]

    def stop_servers(self) -> None:
        """Stop accepting TCP clients (the modem closes)."""
        for server in self._servers:
            server.close()

    def close_pty(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Close the pseudo-terminal (the modem closes, after its tasks ended)."""
        if self._pty_master is not None and loop is not None:
            loop.remove_reader(self._pty_master)
            os.close(self._pty_master)
            self._pty_master = None
        if self._pty_slave is not None:
            os.close(self._pty_slave)
            self._pty_slave = None
