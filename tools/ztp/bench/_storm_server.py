"""Service + gateway in one process, as ``ztp serve`` runs them, for ``ztp bench storm``:
``python -m ztp.bench._storm_server DATA_DIR SIMS``.

The same parts as ``ztp serve`` (uvicorn + the service app on SQLite in DATA_DIR, credentials
bootstrapped into DATA_DIR/credentials.json, ``Gateway`` + ``ServiceClient`` logging in with
the gateway's credentials), with the gateway's default limits: every virtual SIM connects from
127.0.0.1, as thousands of SIMs do from behind one carrier-NAT address, and the defaults must
serve them (connection cap, per-address rate, per-identity rate; issue 13). Logs at info
(JSON, one line per connection) to stderr. Prints ``SERVICE_URL GATEWAY_PORT`` once both
listen; SIGTERM stops it. SIMS is accepted for compatibility and not used. An optional third
argument sets the gateway's PSK lookup floor in seconds (``ztp bench timing --floor``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import socket
import sys
from pathlib import Path


async def _main(data_dir: Path, sims: int, floor_s: float | None = None) -> None:
    import uvicorn

    from ztp.gateway import Gateway, GatewayConfig, ServiceClient
    from ztp.gateway._cli import load_or_bootstrap_credentials, setup_logging
    from ztp.service import Settings, create_app

    setup_logging("info")
    settings = Settings.from_env(data_dir, create_key=True)
    creds, _ = load_or_bootstrap_credentials(settings, data_dir)
    app = create_app(settings)
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only when the proto says TCP (see ztp serve)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if server_task.done():
            server_task.result()
            raise SystemExit("the service did not start")
        await asyncio.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    service = ServiceClient(
        url, None, "storm", credentials=(creds["gateway_id"], creds["gateway_secret"])
    )
    del sims
    config = GatewayConfig(name="storm")
    if floor_s is not None:
        config = dataclasses.replace(config, psk_lookup_floor_s=floor_s)
    gw = Gateway(service, config)
    _, port = await gw.start("127.0.0.1", 0)
    print(url, port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await gw.close()
        await service.aclose()
        server.should_exit = True
        await server_task
        sock.close()


if __name__ == "__main__":
    floor = float(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(_main(Path(sys.argv[1]), int(sys.argv[2]), floor))
