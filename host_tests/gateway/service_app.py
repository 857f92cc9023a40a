"""A small real HTTP service implementing the documented gateway-facing API (INTERFACES.md),
for gateway tests until and besides ``ztp.service``. Served by uvicorn on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from ztp.iccid import parse_ef_iccid


@dataclass
class ServiceState:
    token: str
    sims: dict[bytes, list[tuple[str, bytes]]] = field(default_factory=dict)
    configs: dict[tuple[bytes, str], bytes] = field(default_factory=dict)
    changes: list[bytes] = field(default_factory=list)  # event n = index + 1
    events: list[dict] = field(default_factory=list)
    forwarded: list[dict] = field(default_factory=list)
    psk_fetches: int = 0
    config_delay_s: float = 0.0  # a slow service: config answers wait this long
    config_started: asyncio.Event = field(default_factory=asyncio.Event)  # set per config call

    def set_keys(self, identity: bytes, keys: list[tuple[str, bytes]]) -> None:
        self.sims[identity] = keys
        self.changes.append(identity)


def make_app(state: ServiceState) -> Starlette:
    def authorized(request: Request) -> bool:
        got = request.headers.get("authorization", "")
        return hmac.compare_digest(got.encode(), f"Bearer {state.token}".encode())

    def deny() -> Response:
        return JSONResponse({"error": "unauthorized"}, status_code=401)

    async def psks(request: Request) -> Response:
        if not authorized(request):
            return deny()
        state.psk_fetches += 1
        identity = bytes.fromhex(request.path_params["identity_hex"])
        keys = state.sims.get(identity)
        if not keys:
            return JSONResponse({"error": "unknown"}, status_code=404)
        return JSONResponse(
            {
                "identity": identity.hex(),
                "iccid": parse_ef_iccid(identity),
                "keys": [{"tag": t, "psk": k.hex()} for t, k in keys],
            }
        )

    async def changes(request: Request) -> Response:
        if not authorized(request):
            return deny()
        after = int(request.query_params.get("after", "0"))
        ids = sorted({i.hex() for i in state.changes[after:]})
        return JSONResponse({"last": len(state.changes), "identities": ids})

    async def events(request: Request) -> Response:
        if not authorized(request):
            return deny()
        event = await request.json()
        event["gateway_header"] = request.headers.get("x-ztp-gateway")
        state.events.append(event)
        return Response(status_code=204)

    def device_call(request: Request) -> tuple[bytes, str] | Response:
        if not authorized(request):
            return deny()
        identity = bytes.fromhex(request.headers["x-ztp-identity"])
        if request.query_params.get("iccid") != identity.hex():
            return JSONResponse({"error": "iccid mismatch"}, status_code=403)
        state.forwarded.append(
            {
                "method": request.method,
                "path": request.url.path,
                "identity": identity.hex(),
                "tag": request.headers.get("x-ztp-key-tag"),
                "gateway": request.headers.get("x-ztp-gateway"),
            }
        )
        return identity, request.path_params["device"]

    async def config(request: Request) -> Response:
        got = device_call(request)
        if isinstance(got, Response):
            return got
        state.config_started.set()
        if state.config_delay_s:
            await asyncio.sleep(state.config_delay_s)
        body = state.configs.get(got)
        if body is None:
            return JSONResponse({"error": "no configuration"}, status_code=404)
        return Response(body, media_type="application/octet-stream")

    async def data(request: Request) -> Response:
        got = device_call(request)
        if isinstance(got, Response):
            return got
        if len(await request.body()) > 1024:
            return Response(status_code=413)
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/v1/gateway/psks/{identity_hex}", psks),
            Route("/v1/gateway/psk-changes", changes),
            Route("/v1/gateway/events", events, methods=["POST"]),
            Route("/v1/config/{device}", config),
            Route("/v1/data/{device}", data, methods=["POST"]),
        ]
    )


@contextlib.asynccontextmanager
async def serve_app(app) -> AsyncIterator[str]:
    """Run ``app`` with uvicorn on a free loopback port inside the running loop."""
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only when the proto says TCP (else each keep-alive
    # answer waits for a delayed ACK)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
