"""Loopback HTTP servers the tests and the demo build on a socket of their own set TCP_NODELAY
on what they accept (issue 14).

asyncio sets TCP_NODELAY on an accepted socket only when the listening socket's proto is
IPPROTO_TCP; ``socket.socket()`` says 0, and then every answer on a kept-alive connection
waits for the client's delayed ACK (~40 ms on Linux). Checked on the accepted socket itself
(found through /proc/self/fd: server and client share this process) and by a few round
trips over one kept-alive connection. No timing is asserted (STYLE.md §5): the option is the
cause, and it is what is checked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import httpx
import pytest

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd"),
]


def _accepted_nodelay(server_port: int, client_port: int) -> int:
    """TCP_NODELAY of this process's socket serving ``client_port`` on ``server_port``."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
                continue
            try:
                if sock.getsockname()[1] != server_port or sock.getpeername()[1] != client_port:
                    continue
            except OSError:  # listening or unconnected
                continue
            return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raise AssertionError(f"no accepted socket for client port {client_port} on {server_port}")


async def _check(url: str, path: str) -> None:
    """Three requests over one kept-alive connection; the accepted socket has TCP_NODELAY."""
    server_port = int(url.rsplit(":", 1)[1])
    ports = set()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for _ in range(3):
            r = await client.get(path)
            assert r.status_code < 500
            stream = r.extensions["network_stream"]
            ports.add(stream.get_extra_info("socket").getsockname()[1])
        assert len(ports) == 1, "the connection was not kept alive"
        assert _accepted_nodelay(server_port, ports.pop()) != 0


def test_ota_harness_service_sets_nodelay(tmp_path) -> None:  # noqa: ANN001
    from host_tests.ota_e2e.harness import OtaStack

    async def main() -> None:
        async with OtaStack(tmp_path) as stack:
            await _check(stack.url, "/healthz")

    asyncio.run(main())


def test_demo_stack_service_sets_nodelay() -> None:
    demo = pytest.importorskip("ztp.demo")

    async def main() -> None:
        async with demo.Stack(demo.StackOptions(fast_hashing=True, sim_cost=None)) as stack:
            await _check(stack.service_url, "/healthz")

    asyncio.run(main())
