"""A minimal HTTP/1.1 backend shared by our gateway and stunnel in ``ztp bench gateway``.

It answers what the gateway asks of the configuration service (INTERFACES.md) from a table
loaded at start, so neither side of the comparison is limited by a database:

- ``GET /v1/gateway/psks/{hex}`` -> the key (gateway PSK cache fills; not on the hot path after)
- ``GET /v1/gateway/psk-changes?after=N`` -> no changes
- ``GET /v1/config/...`` -> a fixed configuration body (both the gateway's forwarded request and
  the one stunnel passes through unchanged)

asyncio Protocol, keep-alive unless the request says ``Connection: close`` (the gateway's httpx
pool keeps connections; stunnel opens one per client). Run as
``python -m ztp.bench._backend IDFILE`` (lines ``<identity hex> <psk hex> ...``); prints the port.
"""

from __future__ import annotations

import asyncio
import json
import sys

BODY = b'{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'


class _Http(asyncio.Protocol):
    def __init__(self, psks: dict[str, bytes]) -> None:
        self._psks = psks
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._buf += data
        while b"\r\n\r\n" in self._buf:
            head, _, self._buf = self._buf.partition(b"\r\n\r\n")
            line, _, headers = head.partition(b"\r\n")
            parts = line.split(b" ")
            path = parts[1].decode() if len(parts) == 3 else ""
            close = b"connection: close" in headers.lower()
            self._transport.write(self._answer(path, close))
            if close:
                self._transport.close()
                return

    def _answer(self, path: str, close: bool) -> bytes:
        status, ctype, body = "404 Not Found", "text/plain", b"not found"
        if path.startswith("/v1/config/"):
            status, ctype, body = "200 OK", "application/octet-stream", BODY
        elif path.startswith("/v1/gateway/psks/"):
            ident = path.rsplit("/", 1)[1]
            if ident in self._psks:
                keys = [{"tag": "1", "psk": self._psks[ident].hex()}]
                status, ctype = "200 OK", "application/json"
                body = json.dumps({"identity": ident, "iccid": "", "keys": keys}).encode()
        elif path.startswith("/v1/gateway/psk-changes"):
            status, ctype, body = "200 OK", "application/json", b'{"last": 0, "identities": []}'
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
        )
        return head.encode() + body


async def _main(idfile: str) -> None:
    psks = {}
    with open(idfile) as f:
        for line in f:
            ident, psk, *_ = line.split()
            psks[ident] = bytes.fromhex(psk)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Http(psks), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1]))
