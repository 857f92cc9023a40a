"""A small keep-alive HTTP/1.1 client (httptools over an asyncio Protocol) for the gateway's
hot path: the PSK lookups and the forwarded requests.

RFC 9112 (HTTP/1.1 message syntax), RFC 9110 (semantics).

Why not httpx here: profiles of a loaded gateway (docs/bench.md) showed more than half of its
time in httpx/httpcore per forwarded request (request building, cookie and redirect handling,
and a scan of the whole connection pool, each entry polled for readability). Why not h11 over
asyncio streams, its predecessor (issue 14): h11's event machinery, the stream reader and a
timeout context per call came to a third of the gateway's CPU per exchange. The forwarding
path needs none of it: one base URL, a fixed header set, no redirects, no cookies, no
compression. So the request is one ``bytes`` written at once, and the answer is parsed by
httptools (llhttp, the strict C parser uvicorn uses) straight from ``data_received``, which
resolves one future per call. Everything else the gateway asks of the service (login, the
change feed, audit events) stays on httpx.

Strict on both sides. Request: the method and every header name must be tokens and values
free of CR, LF, NUL and other control characters (RFC 9110 §5.5), else :class:`UpstreamError`
before anything is sent (local misuse: the message never quotes the value, which may be the
token). Answer: llhttp without leniencies (a bad status line, header or chunk, two
Content-Lengths, Content-Length with Transfer-Encoding, bytes beyond the framed body are
errors), a head of at most 16 KiB, ``Transfer-Encoding: chunked`` only, and a body of at most
the caller's ``max_response`` bytes. 1xx answers are skipped; an answer framed by the close of
the connection (no Content-Length, not chunked) is read to the end, as RFC 9112 §6.3 says.

Reuse rules. A connection goes back to the pool only when the exchange completed cleanly and
the answer allows keep-alive (not ``Connection: close``, not an HTTP/1.0 answer without
keep-alive). An idle connection is dropped when the server has closed it (EOF seen) or after
``max_idle_s``, which is below common server keep-alive timeouts (uvicorn: 5 s), so we rarely
race a server closing it. A GET that fails on a reused connection before any byte of the
answer arrived is retried once on a new connection (the server closed it under us); other
methods are never retried. Bytes a server sends on an idle connection make it unusable.
Connections set ``TCP_NODELAY``: a small request must not wait for the ACK of the last one.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

__all__ = ["UpstreamError", "UpstreamPool", "UpstreamReply"]

_MAX_HEAD = 16 * 1024  # answer status line + headers at most 16 KiB (h11's default cap)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 §5.6.2
# Header lines "name: value\r\n": name a token (RFC 9110 §5.6.2), value a field-value
# (§5.5: visible characters, SP and HTAB; non-ASCII goes out as UTF-8, obs-text) with no CR,
# LF, NUL or other control character. A block of one line per field that matches, with as
# many LFs as fields (a CR LF inside a value would make two lines), is all valid fields.
_HEADER_LINES = re.compile(r"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+: [^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
_TARGET = re.compile(r"/[\x21-\x7e]*")  # origin-form, visible ASCII (RFC 9112 §3.2.1)


class UpstreamError(Exception):
    """The call failed: ``timed_out`` tells a timeout (504 to the SIM) from the rest (502)."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class UpstreamReply:
    """The service's answer: status, ``Content-Type`` (None without one) and body."""

    __slots__ = ("status", "content_type", "body")

    def __init__(self, status: int, content_type: str | None, body: bytes) -> None:
        self.status = status
        self.content_type = content_type
        self.body = body

    def __repr__(self) -> str:  # no body: a config body may hold device secrets
        return f"UpstreamReply(status={self.status}, content_type={self.content_type!r})"


class _Retryable(Exception):
    """A reused connection turned out closed before any byte of the answer."""


class _TooLarge(Exception):
    pass


class _Malformed(Exception):
    """The server broke HTTP/1.1 (remote fault); the message says how."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection: writes a request, parses its answer in ``data_received``
    (httptools calls the ``on_*`` methods) and resolves the call's future."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamReply] | None = None
        self._closed = False
        self.idle_since = 0.0
        self.reusable = False  # the last answer was complete and allowed keep-alive
        self._max_response = 0
        self._got_bytes = False
        self._reset_message()

    def _reset_message(self) -> None:
        self._status = 0
        self._content_type: str | None = None
        self._body = bytearray()
        self._head_bytes = 0  # of the header fields parsed
        self._head_received = 0  # bytes received before the head was complete
        self._headers_done = False
        self._framed = False  # Content-Length or chunked: the end is not the connection's

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        # looked up once per kept-alive connection, not per request (it is not free: on
        # CPython 3.11 each lookup checks the process id with a getpid system call)
        self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.reusable = False  # bytes nobody asked for: this connection is out of step
            self.close()
            return
        self._got_bytes = True
        if not self._headers_done:
            self._head_received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # raised by one of our on_* methods
            cause = exc.__context__
            self._fail(cause if isinstance(cause, _TooLarge | _Malformed) else _Malformed(exc))
            return
        except httptools.HttpParserError as exc:
            self._fail(_Malformed(f"malformed answer ({exc})"))
            return
        if not self._headers_done and self._head_received > _MAX_HEAD:
            self._fail(_Malformed(f"answer head exceeds {_MAX_HEAD} bytes"))

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost settles a pending call

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.reusable = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._framed and self._status not in (204, 304):
            # RFC 9112 §6.3 item 8: no Content-Length, not chunked: the close ends the body
            waiter.set_result(UpstreamReply(self._status, self._content_type, bytes(self._body)))
        elif not self._got_bytes:
            waiter.set_exception(_Retryable())
        else:
            waiter.set_exception(_Malformed("connection closed in the middle of the answer"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            raise _Malformed("bytes after the answer")  # never reused: out of step

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:
            return  # a chunked trailer field: not passed on
        self._head_bytes += len(name) + len(value) + 4
        lname = name.lower()
        if lname == b"content-type":
            self._content_type = value.decode("latin-1")
        elif lname == b"content-length":
            self._framed = True
        elif lname == b"transfer-encoding":
            if value.strip(b" \t").lower() != b"chunked":
                raise _Malformed(f"unsupported Transfer-Encoding {value[:40]!r}")
            self._framed = True

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._status = self._parser.get_status_code()
        if self._head_bytes > _MAX_HEAD:
            raise _Malformed(f"answer head exceeds {_MAX_HEAD} bytes")
        if self._status == 101:
            raise _Malformed("unexpected 101 Switching Protocols")

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self._max_response:
            raise _TooLarge

    def on_message_complete(self) -> None:
        if self._status < 200:  # 1xx: an interim answer, the real one follows
            self._reset_message()
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self.reusable = self._parser.should_keep_alive()
        waiter.set_result(UpstreamReply(self._status, self._content_type, bytes(self._body)))

    # -- the pool's side ------------------------------------------------------------------

    def send(self, request: bytes, max_response: int) -> asyncio.Future[UpstreamReply]:
        """Write ``request``; the future resolves with the answer or fails with _Retryable,
        _TooLarge, _Malformed or TimeoutError (see :meth:`time_out`)."""
        transport = self._transport
        assert transport is not None
        if self._closed or transport.is_closing():
            raise _Retryable
        self.reusable = False
        self._max_response = max_response
        self._got_bytes = False
        self._reset_message()
        waiter = self._waiter = self._loop.create_future()
        transport.write(request)
        return waiter

    def time_out(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError())
        self.close()

    def usable(self, now: float, max_idle_s: float) -> bool:
        return (
            self.reusable
            and not self._closed
            and now - self.idle_since < max_idle_s
            and self._transport is not None
            and not self._transport.is_closing()
        )

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.reusable = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


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
        self._host_line = f"Host: {host}\r\n"
        self._prefix = url.path.rstrip("/")
        self._timeout_s = timeout_s
        self._max_idle = max_idle
        self._max_idle_s = max_idle_s
        self._clock = clock
        self._idle: list[_Connection] = []
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

        Args:
            headers: sent as given, after ``Host`` (a ``Content-Length`` follows when ``body``
                is not None, even empty).

        Raises:
            UpstreamError: an invalid method, target or header (nothing sent), connection
                failed or broken, malformed answer, answer longer than ``max_response`` bytes,
                or the deadline passed (``timed_out``).
        """
        request = self._build(method, target, headers, body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            if self._slots.locked():  # at the connection cap: the wait counts too
                async with asyncio.timeout_at(deadline):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
            try:
                conn = self._take()
                if conn is not None:
                    try:
                        return await self._exchange(loop, conn, request, max_response, deadline)
                    except _Retryable:
                        if method != "GET":
                            raise UpstreamError(
                                f"{_where(method, target)}: connection closed by the service"
                            ) from None
                async with asyncio.timeout_at(deadline):
                    _, conn = await loop.create_connection(
                        _Connection, self._host, self._port, ssl=self._ssl,
                        server_hostname=self._host if self._ssl is not None else None,
                    )  # fmt: skip
                try:
                    return await self._exchange(loop, conn, request, max_response, deadline)
                except _Retryable:
                    raise UpstreamError(
                        f"{_where(method, target)}: connection closed by the service"
                    ) from None
            finally:
                self._slots.release()
        except TimeoutError:
            raise UpstreamError(f"{_where(method, target)}: timed out", timed_out=True) from None
        except _TooLarge:
            raise UpstreamError(
                f"{_where(method, target)}: answer exceeds {max_response} bytes"
            ) from None
        except _Malformed as exc:
            raise UpstreamError(f"{_where(method, target)}: RemoteProtocolError: {exc}") from None
        except OSError as exc:
            raise UpstreamError(
                f"{_where(method, target)}: {exc.__class__.__name__}: {exc}"
            ) from None

    def _build(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> bytes:
        """The request's bytes; UpstreamError (local misuse) for what cannot go on the wire.
        The message never quotes a header value: it may be the gateway's token."""
        if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
            raise UpstreamError(
                f"LocalProtocolError: invalid request line for {_where(method, target)[:80]!r}"
            )
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if not _HEADER_LINES.fullmatch(fields) or fields.count("\n") != len(headers):
            raise UpstreamError(
                f"{_where(method, target)}: LocalProtocolError: invalid request header"
            )
        head = f"{method} {self._prefix}{target} HTTP/1.1\r\n{self._host_line}{fields}"
        if body is not None:
            return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        return f"{head}\r\n".encode()

    def _take(self) -> _Connection | None:
        now = self._clock()
        while self._idle:
            conn = self._idle.pop()  # most recently used first: the warmest connection
            if conn.usable(now, self._max_idle_s):
                return conn
            conn.close()
        return None

    async def _exchange(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: _Connection,
        request: bytes,
        max_response: int,
        deadline: float,
    ) -> UpstreamReply:
        timer = loop.call_at(deadline, conn.time_out)
        ok = False
        try:
            reply = await conn.send(request, max_response)
            ok = True
            return reply
        finally:
            timer.cancel()
            if ok and conn.reusable:
                conn.idle_since = self._clock()
                if len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                else:
                    conn.close()
            else:  # failed, cancelled, or the answer said close: never reused
                conn.close()


def _where(method: str, target: str) -> str:
    """``GET /path`` for messages: the query is left out (it names the SIM)."""
    return f"{method} {target.split('?')[0]}"
