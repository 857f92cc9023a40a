"""A small keep-alive HTTP/1.1 client (h11 over asyncio streams) for the gateway's hot path.

Why not httpx here: profiles of a loaded gateway (docs/bench.md) showed more than half of its
time in httpx/httpcore per forwarded request (request building, cookie and redirect handling,
and a scan of the whole connection pool, each entry polled for readability). The forwarding
path needs none of it: one base URL, a fixed header set, no redirects, no cookies, no
compression. This client does exactly that: RFC 9112 framing by h11 (sans-I/O, strict), a
LIFO list of idle connections, a cap on concurrent connections (httpx's default, 100) and one
deadline per call. Everything else the gateway asks of the service (login, the change feed,
audit events) stays on httpx.

Reuse rules. A connection goes back to the pool only when both sides finished the exchange
cleanly (h11 ``DONE``/``DONE``) and the answer did not say ``Connection: close``. An idle
connection is dropped when the server has closed it (EOF seen) or after ``max_idle_s``, which is
below common server keep-alive timeouts (uvicorn: 5 s), so we rarely race a server closing it. A
GET that fails on a reused connection before any byte of the answer arrived is retried once on
a new connection (the server closed it under us); other methods are never retried.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamReply"]

_READ_SIZE = 65536
_MAX_HEAD = 16 * 1024  # h11's incomplete-event cap: response head at most 16 KiB


class UpstreamError(Exception):
    """The call failed: ``timed_out`` tells a timeout (504 to the SIM) from the rest (502)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class UpstreamReply:
    status: int
    content_type: str | None
    body: bytes = field(repr=False)  # a config body may hold device secrets


class _Conn:
    __slots__ = ("reader", "writer", "h11", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self.idle_since = 0.0

    def usable(self, now: float, max_idle_s: float) -> bool:
        return (
            now - self.idle_since < max_idle_s
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and self.h11.our_state is h11.IDLE
        )

    def close(self) -> None:
        self.writer.close()


class UpstreamPool:
    """Keep-alive HTTP/1.1 connections to one origin (``http://`` or ``https://``).

    Args:
        base_url: scheme, host and optional port (a path prefix is kept and prepended).
        timeout_s: deadline for one call: connect, send, and the whole answer.
        ssl_context: for ``https://`` (the gateway passes httpx's default context, so both
            clients trust the same CAs).
        max_connections: concurrent connections; further calls wait for one.
        max_idle: idle connections kept.
        max_idle_s: an idle connection older than this is closed instead of reused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 100,
        max_idle: int = 20,
        max_idle_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"unsupported service URL {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        https = url.scheme == "https"
        self._ssl = (ssl_context or ssl.create_default_context()) if https else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        if self._port != (443 if https else 80):
            host = f"{host}:{self._port}"
        self._host_header = host.encode()
        self._prefix = url.path.rstrip("/")
        self._timeout_s = timeout_s
        self._max_idle = max_idle
        self._max_idle_s = max_idle_s
        self._clock = clock
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max_connections)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def request(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        max_response: int,
    ) -> UpstreamReply:
        """One request; ``target`` is the path and query. Returns the answer, any status.

        Raises:
            UpstreamError: connection failed or broken, malformed answer, answer longer than
                ``max_response`` bytes, or the deadline passed (``timed_out``).
        """
        where = f"{method} {target.split('?')[0]}"
        head = [(b"Host", self._host_header), *((k.encode(), v.encode()) for k, v in headers)]
        if body is not None:
            head.append((b"Content-Length", str(len(body)).encode()))
        try:
            req = h11.Request(method=method, target=self._prefix + target, headers=head)
            async with asyncio.timeout(self._timeout_s), self._slots:
                conn = self._take()
                if conn is not None:
                    try:
                        return await self._exchange(conn, req, body, max_response)
                    except _Retryable:
                        if method != "GET":
                            raise UpstreamError(
                                f"{where}: connection closed by the service"
                            ) from None
                conn = await self._connect()
                try:
                    return await self._exchange(conn, req, body, max_response)
                except _Retryable:
                    raise UpstreamError(f"{where}: connection closed by the service") from None
        except TimeoutError:
            raise UpstreamError(f"{where}: timed out", timed_out=True) from None
        except _TooLarge:
            raise UpstreamError(f"{where}: answer exceeds {max_response} bytes") from None
        except h11.LocalProtocolError:
            # not the message: it quotes the offending header value (maybe the token)
            raise UpstreamError(f"{where}: LocalProtocolError: invalid request header") from None
        except (OSError, h11.RemoteProtocolError) as exc:
            raise UpstreamError(f"{where}: {exc.__class__.__name__}: {exc}") from None

    def _take(self) -> _Conn | None:
        now = self._clock()
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the warmest connection
            if conn.usable(now, self._max_idle_s):
                return conn
            conn.close()
        return None

    async def _connect(self) -> _Conn:
        server_hostname = self._host if self._ssl is not None else None
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, server_hostname=server_hostname,
            limit=_READ_SIZE,
        )  # fmt: skip
        return _Conn(reader, writer)

    async def _exchange(
        self, conn: _Conn, req: h11.Request, body: bytes | None, max_response: int
    ) -> UpstreamReply:
        ok = False
        try:
            out = conn.h11.send(req) or b""
            if body:
                out += conn.h11.send(h11.Data(data=body)) or b""
            out += conn.h11.send(h11.EndOfMessage()) or b""
            try:
                conn.writer.write(out)
                await conn.writer.drain()
            except ConnectionError:
                raise _Retryable from None
            reply = await self._read_answer(conn, max_response)
            ok = True
            return reply
        finally:
            if ok and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
                conn.h11.start_next_cycle()
                conn.idle_since = self._clock()
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                else:
                    conn.close()
            else:
                conn.close()

    async def _read_answer(self, conn: _Conn, max_response: int) -> UpstreamReply:
        status = 0
        content_type: str | None = None
        body = bytearray()
        got_bytes = False
        while True:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await conn.reader.read(_READ_SIZE)
                except ConnectionResetError:
                    if not got_bytes:
                        raise _Retryable from None
                    raise
                if not data and not got_bytes:
                    raise _Retryable
                got_bytes = True
                conn.h11.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"content-type":
                        content_type = value.decode("latin-1")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > max_response:
                    raise _TooLarge
            elif isinstance(event, h11.EndOfMessage):
                return UpstreamReply(status, content_type, bytes(body))
            else:  # ConnectionClosed before the end of the answer
                raise h11.RemoteProtocolError("connection closed in the middle of the answer")


class _Retryable(Exception):
    """A reused connection turned out closed before any byte of the answer."""
