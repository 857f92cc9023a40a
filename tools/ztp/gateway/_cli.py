"""``ztp gateway``: run one TLS 1.3 PSK gateway in front of a configuration service."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import stat
import sys
from pathlib import Path

import click

from ._limits import RateLimit
from ._log import JsonFormatter, log_event

__all__ = ["gateway_command", "parse_hostport", "setup_logging", "run_gateway"]


def parse_hostport(value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``[v6]:PORT`` -> (host, port).

    Raises:
        click.BadParameter: no port, or a port outside 0-65535.
    """
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    host = host.strip("[]") or default_host
    return host, int(port)


def read_token_file(path: Path) -> str:
    """The gateway token: the file's single non-empty line.

    Raises:
        click.ClickException: unreadable, empty or several lines.
    """
    try:
        text = path.read_text(encoding="utf-8").strip()
        mode = path.stat().st_mode
    except OSError as exc:
        raise click.ClickException(f"cannot read token file {path}: {exc.strerror}") from None
    if not text or "\n" in text:
        raise click.ClickException(f"token file {path} must hold exactly one line")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log_event(logging.WARNING, "token_file_readable_by_others", path=str(path))
    return text


def setup_logging(level: str = "info", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger("ztp")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


async def run_gateway(
    gateway: object, host: str, port: int, metrics: tuple[str, int] | None
) -> None:
    """Start ``gateway`` (a :class:`~._server.Gateway`), serve until SIGINT/SIGTERM."""
    from ._server import Gateway

    assert isinstance(gateway, Gateway)
    bound = await gateway.start(host, port)
    if metrics is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics[1], metrics[0], registry=gateway.metrics.registry)
    click.echo(f"gateway {gateway.config.name} listening on {bound[0]}:{bound[1]}", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await gateway.close()
        await gateway.service.aclose()


@click.command("gateway")
@click.option("--service", "service_url", required=True, help="Base URL of the service.")
@click.option(
    "--token-file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the gateway's bearer token (scope gateway).",
)
@click.option("--listen", default="127.0.0.1:8443", show_default=True, help="HOST:PORT for SIMs.")
@click.option(
    "--name",
    default=socket.gethostname(),
    show_default=True,
    help="Gateway name sent as X-ZTP-Gateway and in audit events.",
)
@click.option(
    "--metrics",
    "metrics_listen",
    default=None,
    help="HOST:PORT to serve Prometheus /metrics on (off by default).",
)
@click.option("--handshake-timeout", default=30.0, show_default=True, help="Seconds.")
@click.option("--idle-timeout", default=20.0, show_default=True, help="Seconds.")
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    help="Seconds from handshake to the complete request.",
)
@click.option("--max-connections", default=1024, show_default=True)
@click.option(
    "--identity-rate",
    default=10.0,
    show_default=True,
    help="Requests per minute per verified SIM (burst: half of it, at least 1).",
)
@click.option(
    "--address-rate",
    default=100.0,
    show_default=True,
    help="New connections per second per client address (burst 10x).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def gateway_command(
    service_url: str,
    token_file: Path,
    listen: str,
    name: str,
    metrics_listen: str | None,
    handshake_timeout: float,
    idle_timeout: float,
    request_timeout: float,
    max_connections: int,
    identity_rate: float,
    address_rate: float,
    log_level: str,
) -> None:
    """Run a TLS 1.3 PSK gateway for SIMs in front of a configuration service."""
    from ._server import Gateway, GatewayConfig
    from ._service import ServiceClient
    from ._session import SessionLimits

    setup_logging(log_level)
    host, port = parse_hostport(listen)
    metrics = parse_hostport(metrics_listen) if metrics_listen else None
    try:
        config = GatewayConfig(
            name=name,
            session=SessionLimits(
                handshake_timeout_s=handshake_timeout,
                idle_timeout_s=idle_timeout,
                request_timeout_s=request_timeout,
            ),
            max_connections=max_connections,
            identity_rate=RateLimit.per_minute(identity_rate, max(1, int(identity_rate // 2))),
            address_rate=RateLimit(address_rate, max(1, int(address_rate * 10))),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    token = read_token_file(token_file)

    async def main() -> None:
        gw = Gateway(ServiceClient(service_url, token, name), config)
        await run_gateway(gw, host, port, metrics)

    asyncio.run(main())
