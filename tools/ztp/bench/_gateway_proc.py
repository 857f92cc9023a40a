"""Our gateway as the benchmark runs it:
``python -m ztp.bench._gateway_proc SERVICE_URL [CREDENTIALS_JSON]``.

Production code path (``Gateway`` + ``ServiceClient``), defaults everywhere except:
psk_ke only (the OpenSSL load generator also offers psk_dhe_ke, which the default preference
would pick; SIMs offer psk_ke only), and the per-address / per-identity rate limits and the
connection cap raised, because the load comes from one address at thousands of exchanges
per second. Logs its JSON lines at the default level (info), to stderr, and runs on the event
loop ``ztp gateway`` picks (uvloop when installed; ``ZTP_EVENT_LOOP=asyncio`` for asyncio's),
as ``ztp gateway`` does. Without CREDENTIALS_JSON it sends a fixed bearer token (the
benchmark's backend takes any); with it (``{"gateway_id": ..., "gateway_secret": ...}``) it
logs in to a real ``ztp service serve`` as ``ztp gateway --credentials-file`` does. Prints the
port.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from ztp.gateway import (
    Gateway,
    GatewayConfig,
    RateLimit,
    ServiceClient,
    run_event_loop,
    setup_logging,
)
from ztp.tls import KeyExchangeMode


async def _main(url: str, credentials_path: str | None) -> None:
    setup_logging("info")
    unlimited = RateLimit(per_second=1e9, burst=10**9)
    config = GatewayConfig(
        name="bench",
        max_connections=65536,
        identity_rate=unlimited,
        address_rate=unlimited,
        key_exchange_modes=(KeyExchangeMode.PSK_KE,),
    )
    if credentials_path is None:
        service = ServiceClient(url, "bench-token", config.name)
    else:
        with open(credentials_path) as f:
            creds = json.load(f)
        login = (creds["gateway_id"], creds["gateway_secret"])
        service = ServiceClient(url, None, config.name, credentials=login)
    gw = Gateway(service, config)
    _, port = await gw.start("127.0.0.1", 0)
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gw.close()
    await service.aclose()


if __name__ == "__main__":
    run_event_loop(_main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
