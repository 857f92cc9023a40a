"""Service + gateway in one process, as ``ztp serve`` runs them, for ``ztp bench storm``:
``python -m ztp.bench._storm_server DATA_DIR SIMS``.

The same parts as ``ztp serve`` (a ``ztp.stack.Stack`` without the modem: uvicorn + the
service app on SQLite in DATA_DIR, credentials bootstrapped into DATA_DIR/credentials.json,
``Gateway`` + ``ServiceClient`` logging in with the gateway's credentials), with the gateway's
default limits: every virtual SIM connects from 127.0.0.1, as thousands of SIMs do from behind
one carrier-NAT address, and the defaults must serve them (connection cap, per-address rate,
per-identity rate; issue 13). Logs at info (JSON, one line per connection) to stderr. Prints
``SERVICE_URL GATEWAY_PORT`` once both listen; SIGTERM stops it. SIMS is accepted for
compatibility and not used. An optional third argument sets the gateway's PSK lookup floor in
seconds (``ztp bench timing --floor``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
from pathlib import Path


async def _main(data_dir: Path, sims: int, floor_s: float | None = None) -> None:
    from ztp.gateway import GatewayConfig, setup_logging
    from ztp.stack import Stack, StackOptions

    setup_logging("info")
    del sims
    config = GatewayConfig(name="storm")
    if floor_s is not None:
        config = dataclasses.replace(config, psk_lookup_floor_s=floor_s)
    options = StackOptions(data_dir=data_dir, gateway_config=config, with_modem=False,
                           record_events=False)
    async with Stack(options) as stack:
        print(stack.service_url, stack.gateway_port, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    floor = float(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(_main(Path(sys.argv[1]), int(sys.argv[2]), floor))
