"""ztp.gateway._upstream: the keep-alive h11 client against scripted loopback servers."""

import asyncio

import pytest
from ztp.gateway._upstream import UpstreamError, UpstreamPool


def ok(body: bytes = b"hi", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n"
        + extra
        + b"\r\n"
        + body
    )


async def serve(answer):
    """A server that reads one request head at a time and calls ``answer(n, head, writer)``.

    Returns (server, url, connections): connections counts accepted TCP connections.
    """
    conns = []
    requests = []

    async def handle(reader, writer):
        conns.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                requests.append(head)
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                body = await reader.readexactly(length[0]) if length else b""
                if not await answer(len(requests), head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", conns, requests


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection_and_sends_headers():
    async def main():
        async def answer(n, req, writer):
            writer.write(ok(b"n%d" % n))
            await writer.drain()
            return True

        server, url, conns, reqs = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            for i in range(1, 4):
                reply = await pool.request("GET", "/v1/x?a=1", [("X-A", "b")], None, 1024)
                assert (reply.status, reply.body, reply.content_type) == (
                    200,
                    b"n%d" % i,
                    "text/plain",
                )
            reply = await pool.request("POST", "/v1/d", [], b"data", 1024)
            assert reply.status == 200
        finally:
            await pool.aclose()
            server.close()
        assert len(conns) == 1
        assert reqs[0].startswith(b"GET /v1/x?a=1 HTTP/1.1\r\n")
        assert b"\r\nhost: 127.0.0.1:" in reqs[0].lower()
        assert b"\r\nx-a: b\r\n" in reqs[0].lower()
        assert b"content-length" not in reqs[0].lower()
        assert b"\r\ncontent-length: 4\r\n" in reqs[3].lower()

    run(main())


def test_connection_close_answer_is_not_reused():
    async def main():
        async def answer(n, req, writer):
            writer.write(ok(extra=b"Connection: close\r\n"))
            await writer.drain()
            return False

        server, url, conns, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            for _ in range(2):
                assert (await pool.request("GET", "/", [], None, 1024)).status == 200
        finally:
            await pool.aclose()
            server.close()
        assert len(conns) == 2

    run(main())


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_reused_connection_closed_by_server(method):
    """The server closes an idle keep-alive connection without telling: GET is retried once on
    a new connection, POST is not (it may not be idempotent)."""

    async def main():
        async def answer(n, req, writer):
            if n == 2:  # drop the second request unanswered
                return False
            writer.write(ok())
            await writer.drain()
            return True

        server, url, conns, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            assert (await pool.request(method, "/", [], None, 1024)).status == 200
            if method == "GET":
                assert (await pool.request(method, "/", [], None, 1024)).status == 200
                assert len(conns) == 2
            else:
                with pytest.raises(UpstreamError, match="closed by the service") as exc:
                    await pool.request(method, "/", [], b"", 1024)
                assert not exc.value.timed_out
        finally:
            await pool.aclose()
            server.close()

    run(main())


def test_oversized_malformed_unreachable_and_timeout():
    async def main():
        async def answer(n, req, writer):
            if b"/big" in req:
                writer.write(ok(b"x" * 2000))
            elif b"/bad" in req:
                writer.write(b"NOT HTTP\r\n\r\n")
            elif b"/slow" in req:
                return True  # never answers
            await writer.drain()
            return True

        server, url, _, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=0.2)
        try:
            with pytest.raises(UpstreamError, match="exceeds 1024 bytes"):
                await pool.request("GET", "/big", [], None, 1024)
            with pytest.raises(UpstreamError, match="RemoteProtocolError"):
                await pool.request("GET", "/bad", [], None, 1024)
            with pytest.raises(UpstreamError) as exc:
                await pool.request("GET", "/slow", [], None, 1024)
            assert exc.value.timed_out
        finally:
            await pool.aclose()
            server.close()
        dead = UpstreamPool("http://127.0.0.1:9", timeout_s=5)
        with pytest.raises(UpstreamError) as exc:
            await dead.request("GET", "/", [], None, 1024)
        assert not exc.value.timed_out

    run(main())


def test_bad_header_value_is_refused_locally():
    async def main():
        pool = UpstreamPool("http://127.0.0.1:9", timeout_s=5)
        with pytest.raises(UpstreamError, match="LocalProtocolError"):
            await pool.request("GET", "/", [("X-A", "a\r\nInjected: 1")], None, 1024)

    run(main())


def test_rejects_other_schemes():
    with pytest.raises(ValueError):
        UpstreamPool("ftp://example.com", timeout_s=1)
