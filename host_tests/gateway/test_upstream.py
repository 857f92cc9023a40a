"""ztp.gateway._upstream: the keep-alive client against scripted loopback servers."""

import asyncio
import socket

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


def test_framings_interim_answers_and_trailers():
    """Chunked (with a trailer), 1xx before the answer, and a body ended by the close (RFC 9112
    §6.3): the same reply as with Content-Length; a close-framed answer is not reused."""

    async def main():
        async def answer(n, req, writer):
            if b"/chunked" in req:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                    b"Content-Type: a/b\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n"
                    b"Content-Type: x/trailer\r\n\r\n"
                )
            elif b"/interim" in req:
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after"))
            elif b"/close" in req:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: c/d\r\n\r\nto the end")
                await writer.drain()
                return False
            await writer.drain()
            return True

        server, url, conns, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            got = await pool.request("GET", "/chunked", [], None, 1024)
            assert (got.status, got.content_type, got.body) == (200, "a/b", b"hello")
            got = await pool.request("GET", "/interim", [], None, 1024)
            assert (got.status, got.body) == (200, b"after")
            got = await pool.request("GET", "/close", [], None, 1024)
            assert (got.status, got.content_type, got.body) == (200, "c/d", b"to the end")
            got = await pool.request("GET", "/interim", [], None, 1024)
            assert got.body == b"after"
        finally:
            await pool.aclose()
            server.close()
        assert len(conns) == 2  # kept alive until the close-framed answer

    run(main())


@pytest.mark.parametrize(
    "answer_bytes, error",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n", "malformed answer"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 17000 + b"\r\n\r\n", "head exceeds 16384"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 3000 + b"\r\n", "head exceeds 16384"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" + b"x" * 2048,
            "exceeds 1024 bytes",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "closed in the middle"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "101"),
    ],
)
def test_bad_answers_are_clear_errors(answer_bytes, error):
    async def main():
        async def answer(n, req, writer):
            for i in range(0, len(answer_bytes), 1000):  # the head arrives in pieces
                writer.write(answer_bytes[i : i + 1000])
                await writer.drain()
            return False  # and the server closes

        server, url, _, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            with pytest.raises(UpstreamError, match=error) as exc:
                await pool.request("GET", "/x?iccid=98", [], None, 1024)
            assert not exc.value.timed_out
            assert "98" not in str(exc.value)  # the query names the SIM: left out
        finally:
            await pool.aclose()
            server.close()

    run(main())


def test_bytes_on_an_idle_connection_make_it_unusable():
    async def main():
        async def answer(n, req, writer):
            writer.write(ok() + (b"HTTP/1.1 200 OK\r\n" if n == 1 else b""))
            await writer.drain()
            return True

        server, url, conns, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=5)
        try:
            for _ in range(2):
                assert (await pool.request("GET", "/", [], None, 1024)).body == b"hi"
        finally:
            await pool.aclose()
            server.close()
        assert len(conns) == 2

    run(main())


def test_nodelay_timeout_and_cancel_leave_no_connection_behind():
    """TCP_NODELAY on the pool's sockets; a call cut off by its deadline or cancelled closes
    its connection (the late answer must not be read as the next call's)."""

    async def main():
        sockets = []

        async def answer(n, req, writer):
            sockets.append(writer.get_extra_info("socket"))
            if b"/slow" in req:
                await asyncio.sleep(0.5)
            writer.write(ok(b"n%d" % n))
            await writer.drain()
            return True

        server, url, conns, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=0.2)
        try:
            assert (await pool.request("GET", "/", [], None, 1024)).body == b"n1"
            [conn] = pool._idle
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            with pytest.raises(UpstreamError) as exc:
                await pool.request("GET", "/slow", [], None, 1024)
            assert exc.value.timed_out
            task = asyncio.create_task(pool.request("GET", "/slow", [], None, 1024))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not pool._idle
            got = await pool.request("GET", "/", [], None, 1024)
            assert got.body == b"n4"
        finally:
            await pool.aclose()
            server.close()
        assert len(conns) == 3

    run(main())


def test_wait_for_a_connection_counts_against_the_deadline():
    async def main():
        async def answer(n, req, writer):
            await asyncio.sleep(1)
            return False

        server, url, _, _ = await serve(answer)
        pool = UpstreamPool(url, timeout_s=0.2, max_connections=1)
        try:
            calls = [pool.request("GET", "/", [], None, 1024) for _ in range(2)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(r, UpstreamError) and r.timed_out for r in results)
        finally:
            await pool.aclose()
            server.close()

    run(main())


@pytest.mark.parametrize(
    "method, target, headers",
    [
        ("GET", "/", [("X-A", "a\nb")]),
        ("GET", "/", [("X-A", "a\r\nX-B: b")]),
        ("GET", "/", [("X-A", "a\r")]),
        ("GET", "/", [("X-A: b\r\nX-B", "b")]),
        ("GET", "/", [("X-A", "b"), ("", "c")]),
        ("GET", "/", [("X-A", "a\x00b")]),
        ("GET", "/", [("X A", "b")]),
        ("GET", "/a b", []),
        ("GET", "http://x/", []),
        ("G\r\nET", "/", []),
    ],
)
def test_invalid_requests_are_refused_before_sending(method, target, headers):
    async def main():
        pool = UpstreamPool("http://127.0.0.1:9", timeout_s=5)
        with pytest.raises(UpstreamError, match="LocalProtocolError") as exc:
            await pool.request(method, target, headers, None, 1024)
        assert "\n" not in str(exc.value) and "\x00" not in str(exc.value)

    run(main())
