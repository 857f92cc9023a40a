"""Sans-I/O reader for the one HTTP/1.1 request a SIM sends through its TLS tunnel.

RFC 9112 (HTTP/1.1 message syntax), RFC 9110 (semantics). The gateway reads exactly one
request per connection and always answers with ``Connection: close``, so this is not a general
HTTP server: no pipelining, no chunked bodies, no trailers, no ``Expect`` handling.

Tolerated, because SIM applets write HTTP by hand: a missing ``Host`` header (RFC 9112 §3.2
makes it a MUST, SIMs omit it), bare LF line endings (RFC 9112 §2.2 allows a recipient to
accept them), an HTTP/1.0 request line. Refused with the status a server would send:
oversized request line (414) or head (431), too many headers (431), a body above the limit
(413), ``Transfer-Encoding`` (501: a SIM sends ``Content-Length``), a malformed line (400),
an HTTP version other than 1.x (505).

Shape (STYLE.md §2): ``receive_data(data)`` buffers, ``next_event()`` returns a
:class:`Request` or ``NEED_DATA``, or raises :class:`HttpError` carrying the status to answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "NEED_DATA",
    "HttpError",
    "HttpLimits",
    "Request",
    "RequestReader",
    "build_response",
    "REASONS",
]


class _NeedData(Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA = _NeedData.NEED_DATA

# RFC 9110 §15 reason phrases for the statuses the gateway emits or relays.
REASONS: dict[int, str] = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# control characters a header value must not hold (HTAB is allowed): RFC 9110 §5.5
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/(\d)\.(\d)")
# request-target in origin-form (RFC 9112 §3.2.1); visible ASCII only.
_TARGET = re.compile(rb"/[\x21-\x7e]*")


class HttpError(Exception):
    """The client's request is malformed or over a limit (remote fault).

    Attributes:
        status: the HTTP status to answer with (400, 413, 414, 431, 501, 505).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class HttpLimits:
    """Caps on what one request may hold. The defaults fit SAFE2 requests with room to spare."""

    max_request_line: int = 1024
    max_head: int = 4096  # request line + headers + blank line
    max_headers: int = 32
    max_body: int = 1024  # the service refuses telemetry above 1024 bytes anyway

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_head", "max_headers"):
            if getattr(self, name) < 1:
                raise ValueError(f"HttpLimits.{name} must be >= 1")
        if self.max_body < 0:
            raise ValueError("HttpLimits.max_body must be >= 0")


@dataclass(frozen=True)
class Request:
    """One parsed request. Header names are lowercased; values are stripped bytes."""

    method: str
    target: str
    http_version: str
    headers: tuple[tuple[str, bytes], ...] = field(default=())
    body: bytes = b""

    def header(self, name: str) -> bytes | None:
        """The value of the header ``name`` (case-insensitive), or None when absent."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class _State(Enum):
    EXPECT_HEAD = "EXPECT_HEAD"
    EXPECT_BODY = "EXPECT_BODY"
    DONE = "DONE"
    ERROR = "ERROR"


class RequestReader:
    """Incremental reader for one HTTP/1.1 request.

    Feed bytes split anywhere with :meth:`receive_data`; :meth:`next_event` returns the
    :class:`Request` once complete, ``NEED_DATA`` before. Bytes after the request are kept
    in :attr:`trailing_data` and otherwise ignored (one request per connection).
    """

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.limits = limits or HttpLimits()
        self._buf = bytearray()
        self._state = _State.EXPECT_HEAD
        self._eof = False
        self._head: tuple[str, str, str, tuple[tuple[str, bytes], ...]] | None = None
        self._body_len = 0
        self._done: Request | None = None
        self.trailing_data = b""

    @property
    def state(self) -> str:
        return self._state.value

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data``; ``b""`` means the peer closed (EOF)."""
        if self._state is _State.ERROR:
            raise HttpError(400, "reader is in ERROR state after a previous failure")
        if not data:
            self._eof = True
            return
        if self._state is _State.DONE:
            self.trailing_data += data[: self.limits.max_head]
            return
        self._buf += data

    def next_event(self) -> Request | _NeedData:
        """Return the complete request, or ``NEED_DATA``.

        Raises:
            HttpError: the request is malformed, over a limit, or the peer closed before
                sending all of it (400). The reader then stays in ERROR.
        """
        try:
            return self._next_event()
        except HttpError:
            self._state = _State.ERROR
            raise

    def _next_event(self) -> Request | _NeedData:
        if self._state is _State.ERROR:
            raise HttpError(400, "reader is in ERROR state after a previous failure")
        if self._state is _State.DONE:
            assert self._done is not None
            return self._done
        if self._state is _State.EXPECT_HEAD:
            end = self._find_head_end()
            if end is None:
                self._check_incomplete_head()
                if self._eof:
                    raise HttpError(400, "connection closed inside the request head")
                return NEED_DATA
            head_end, body_start = end
            if body_start > self.limits.max_head:
                raise HttpError(
                    431, f"request head is {body_start} bytes, limit {self.limits.max_head}"
                )
            self._head = self._parse_head(bytes(self._buf[:head_end]))
            del self._buf[:body_start]
            self._state = _State.EXPECT_BODY
        # EXPECT_BODY
        if len(self._buf) < self._body_len:
            if self._eof:
                raise HttpError(
                    400, f"connection closed after {len(self._buf)} of {self._body_len} body bytes"
                )
            return NEED_DATA
        assert self._head is not None
        method, target, version, headers = self._head
        body = bytes(self._buf[: self._body_len])
        self.trailing_data = bytes(self._buf[self._body_len :])[: self.limits.max_head]
        self._buf.clear()
        self._done = Request(method, target, version, headers, body)
        self._state = _State.DONE
        return self._done

    def _find_head_end(self) -> tuple[int, int] | None:
        """(end of the last header line, start of the body), or None if not complete."""
        # Leading empty lines before the request line: RFC 9112 §2.2 says SHOULD ignore one.
        buf = self._buf
        if buf and buf[0] in b"\r\n":
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":
                del buf[: 2 if buf[:1] == b"\r" else 1]
        # the first LF (before ``limit``) followed by LF or CR LF ends the head
        limit = self.limits.max_head + 4
        lf_lf = buf.find(b"\n\n", 0, limit + 1)
        lf_crlf = buf.find(b"\n\r\n", 0, limit + 2)
        if lf_crlf != -1 and (lf_lf == -1 or lf_crlf < lf_lf):
            return lf_crlf, lf_crlf + 3
        if lf_lf != -1:
            return lf_lf, lf_lf + 2
        return None

    def _check_incomplete_head(self) -> None:
        nl = self._buf.find(b"\n")
        first_line_len = nl if nl != -1 else len(self._buf)
        if first_line_len > self.limits.max_request_line:
            raise HttpError(414, f"request line exceeds {self.limits.max_request_line} bytes")
        if len(self._buf) > self.limits.max_head:
            raise HttpError(431, f"request head exceeds {self.limits.max_head} bytes")

    def _parse_head(self, head: bytes) -> tuple[str, str, str, tuple[tuple[str, bytes], ...]]:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        request_line, header_lines = lines[0], lines[1:]
        if len(request_line) > self.limits.max_request_line:
            raise HttpError(414, f"request line exceeds {self.limits.max_request_line} bytes")
        m = _REQUEST_LINE.fullmatch(request_line)
        if m is None:
            raise HttpError(400, f"malformed request line {request_line[:80]!r}")
        method, target, major, minor = m.groups()
        if major != b"1":
            raise HttpError(505, f"HTTP/{major.decode()}.{minor.decode()} is not supported")
        if not _TARGET.fullmatch(target):
            raise HttpError(400, "request target must be in origin-form (/path?query)")
        if len(header_lines) > self.limits.max_headers:
            raise HttpError(
                431, f"{len(header_lines)} header lines, limit {self.limits.max_headers}"
            )
        headers: list[tuple[str, bytes]] = []
        lengths: list[bytes] = []
        transfer_encoding = False
        for line in header_lines:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.fullmatch(name):
                if line[:1] in (b" ", b"\t"):
                    # RFC 9112 §5.2: obs-fold; a server MUST reject it or replace it. We reject.
                    raise HttpError(400, "obsolete header line folding is not accepted")
                raise HttpError(400, f"malformed header line {line[:80]!r}")
            value = value.strip(b" \t")
            if _CTL.search(value):
                raise HttpError(400, f"control character in header {name.decode()!r}")
            lname = name.decode("ascii").lower()
            headers.append((lname, value))
            if lname == "content-length":
                lengths.append(value)
            elif lname == "transfer-encoding":
                transfer_encoding = True
        if transfer_encoding:
            raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
        if len(lengths) > 1:
            # RFC 9112 §6.3 item 5: differing or repeated lengths are unrecoverable here.
            raise HttpError(400, "more than one Content-Length header")
        if lengths:
            raw = lengths[0]
            if not raw.isdigit() or len(raw) > 9:
                raise HttpError(400, f"invalid Content-Length {raw[:20]!r}")
            self._body_len = int(raw)
            if self._body_len > self.limits.max_body:
                raise HttpError(
                    413, f"body of {self._body_len} bytes exceeds limit {self.limits.max_body}"
                )
        return (
            method.decode("ascii"),
            target.decode("ascii"),
            (major + b"." + minor).decode("ascii"),
            tuple(headers),
        )


def build_response(
    status: int,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """Serialize a complete response with ``Content-Length`` and ``Connection: close``.

    Raises:
        ValueError: ``status`` outside 100-599, or a header holding CR/LF (local misuse).
    """
    if not 100 <= status <= 599:
        raise ValueError(f"HTTP status must be 100-599, got {status}")
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    for name, value in extra_headers:
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"response header {name!r} holds CR, LF or NUL")
        lines.append(f"{name}: {value}")
    if content_type is not None and any(c in content_type for c in "\r\n\0"):
        raise ValueError("Content-Type holds CR, LF or NUL")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body
