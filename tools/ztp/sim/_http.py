"""HTTP/1.1 in the applet's TLS tunnel (RFC 9112): request writer and strict response reader.

Sans-I/O: ``build_get`` / ``build_post`` return the request bytes; ``ResponseReader`` takes the
decrypted bytes in any split (``receive_data``) and says when the response is complete.
Bounded: at most 2048 bytes of status line + headers; the body must be announced with
Content-Length (no chunked coding: the SIM cannot afford it) and is capped; a longer body is a
``BodyTooLarge`` error as soon as its length is known, without buffering it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BodyTooLarge", "HttpError", "HttpResponse", "ResponseReader", "build_request"]

MAX_HEAD = 2048
_TOKEN = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class HttpError(Exception):
    """The response is not well-formed HTTP/1.1 (remote misbehaviour)."""


class BodyTooLarge(HttpError):
    """The announced (or received) body exceeds the limit."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def build_request(
    method: str,
    target: str,
    host: str,
    port: int,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> bytes:
    """One request with ``Host`` (port omitted when 443) and ``Connection: close``."""
    if method not in ("GET", "POST") or not target.startswith("/"):
        raise ValueError(f"bad request {method} {target}")
    if any(c in target for c in " \r\n"):
        raise ValueError("request target with whitespace")
    authority = host if ":" not in host else f"[{host}]"
    if port != 443:
        authority += f":{port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {authority}", "Connection: close"]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + (body or b"")


class ResponseReader:
    """Incremental reader of one HTTP/1.1 response.

    Args:
        max_body: the largest body accepted (255 for SAFE2 configuration).
        head_request: no body follows (not used by the applet; kept for completeness).
    """

    def __init__(self, max_body: int) -> None:
        self._buf = bytearray()
        self._max_body = max_body
        self._head: tuple[int, str, tuple[tuple[str, str], ...], int] | None = None
        self.response: HttpResponse | None = None

    def receive_data(self, data: bytes) -> HttpResponse | None:
        """Feed bytes; returns the response once complete (then further data is an error).

        Raises:
            BodyTooLarge: Content-Length above ``max_body``.
            HttpError: malformed status line or headers, head too long, bytes after the body.
        """
        if self.response is not None:
            if data:
                raise HttpError("bytes after the end of the response")
            return self.response
        self._buf += data
        if self._head is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise HttpError(f"response head longer than {MAX_HEAD} bytes")
                return None
            if end + 4 > MAX_HEAD:
                raise HttpError(f"response head longer than {MAX_HEAD} bytes")
            self._head = _parse_head(bytes(self._buf[:end]), self._max_body)
            del self._buf[: end + 4]
        status, reason, headers, length = self._head
        if len(self._buf) > length:
            raise HttpError(f"{len(self._buf) - length} bytes after the {length}-byte body")
        if len(self._buf) < length:
            return None
        self.response = HttpResponse(status, reason, headers, bytes(self._buf))
        return self.response

    def eof(self) -> HttpResponse:
        """The connection ended: the complete response, or HttpError if it was cut short."""
        if self.response is None:
            raise HttpError("connection closed before the response was complete")
        return self.response


def _parse_head(head: bytes, max_body: int) -> tuple[int, str, tuple[tuple[str, str], ...], int]:
    lines = head.split(b"\r\n")
    status_line = lines[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"HTTP/1.1":
        raise HttpError(f"bad status line {status_line[:40]!r}")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or code[0:1] not in b"12345":
        raise HttpError(f"bad status code {code[:10]!r}")
    reason = parts[2] if len(parts) == 3 else b""
    if any(b < 0x20 and b != 0x09 or b == 0x7F for b in reason):
        raise HttpError("control character in the reason phrase")
    status = int(code)
    headers: list[tuple[str, str]] = []
    length: int | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or any(b not in _TOKEN for b in name):
            raise HttpError(f"bad header line {line[:40]!r}")
        value = value.strip(b" \t")
        if any(b < 0x20 and b != 0x09 or b == 0x7F for b in value):
            raise HttpError("control character in a header value")
        lname = name.decode("ascii").lower()
        if lname == "transfer-encoding":
            raise HttpError("Transfer-Encoding is not accepted (Content-Length only)")
        if lname == "content-length":
            if length is not None:
                raise HttpError("more than one Content-Length")
            if not value.isdigit() or len(value) > 9:
                raise HttpError(f"bad Content-Length {value[:12]!r}")
            length = int(value)
        headers.append((lname, value.decode("latin-1")))
    if status in (204, 304) or 100 <= status < 200:
        if length not in (None, 0):
            raise HttpError(f"status {status} with a body")
        length = 0
    if length is None:
        raise HttpError("no Content-Length")
    if length > max_body:
        raise BodyTooLarge(f"body of {length} bytes, at most {max_body}")
    return status, reason.decode("latin-1"), tuple(headers), length
