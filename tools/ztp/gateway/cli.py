"""``ztp gateway``: run one TLS 1.3 PSK gateway in front of a configuration service; and the
run-time helpers every command that runs a gateway shares (``ztp serve``, the benchmarks):
logging set-up, the event loop (uvloop where installed), the Prometheus endpoint, the signal
handling of a graceful stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from ztp.listen import bind_listener, parse_hostport

from ._limits import RateLimit
from ._log import JsonLinesHandler, flush_logs, log_event

__all__ = [
    "EVENT_LOOPS",
    "event_loop_factory",
    "gateway_command",
    "parse_hostport",
    "run_event_loop",
    "run_gateway",
    "setup_logging",
    "start_metrics_server",
    "wait_for_signal",
]


_T = TypeVar("_T")

EVENT_LOOPS = ("auto", "uvloop", "asyncio")
_LOOP_ENV = "ZTP_EVENT_LOOP"


def event_loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop a gateway process runs on: uvloop's when it is installed (the ``server``
    extra installs it on Linux and macOS), else asyncio's.

    Why uvloop: under load a gateway spends about a quarter of its CPU in asyncio's own
    Python code (the selector loop, its transports and callbacks); uvloop does the same in C
    over libuv, with the same ``asyncio`` API (Protocols, call_later, signal handlers,
    servers), so the gateway's code is the same on both.

    Args:
        choice: ``auto`` (uvloop if importable, else asyncio), ``uvloop`` or ``asyncio``;
            None reads ``ZTP_EVENT_LOOP`` (default ``auto``).

    Raises:
        click.ClickException: ``uvloop`` was asked for and is not installed, or an unknown
            choice.
    """
    choice = (choice or os.environ.get(_LOOP_ENV) or "auto").lower()
    if choice not in EVENT_LOOPS:
        raise click.ClickException(
            f"event loop {choice!r}: expected one of {', '.join(EVENT_LOOPS)} ({_LOOP_ENV})"
        )
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise click.ClickException(
                    "event loop uvloop: not installed (pip install uvloop; Linux and macOS)"
                ) from None
        else:
            return uvloop.new_event_loop  # type: ignore[no-any-return]
    return asyncio.new_event_loop


def run_event_loop(main: Coroutine[Any, Any, _T], loop: str | None = None) -> _T:
    """``asyncio.run(main)`` on the loop :func:`event_loop_factory` picks for ``loop``."""
    try:
        factory = event_loop_factory(loop)
    except BaseException:
        main.close()  # never awaited: say nothing about it
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


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


def read_credentials_file(path: Path) -> tuple[str, str]:
    """(client id, client secret) from a file holding them on two lines.

    Raises:
        click.ClickException: unreadable, or not exactly two non-empty lines.
    """
    try:
        lines = path.read_text(encoding="utf-8").split()
        mode = path.stat().st_mode
    except OSError as exc:
        raise click.ClickException(f"cannot read credentials file {path}: {exc.strerror}") from None
    if len(lines) != 2:
        raise click.ClickException(f"credentials file {path} must hold a client id and a secret")
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log_event(logging.WARNING, "credentials_file_readable_by_others", path=str(path))
    return lines[0], lines[1]


def setup_logging(level: str = "info", json_logs: bool = True) -> None:
    """The ``ztp`` loggers to stderr at ``level``, one JSON object per line (``json_logs``:
    :class:`~._log.JsonLinesHandler`, written in batches at most 50 ms late, warnings at
    once), as a gateway process logs; replaces their handlers (after writing what they hold),
    so calling it again is harmless."""
    handler: logging.Handler
    handler = JsonLinesHandler(sys.stderr) if json_logs else logging.StreamHandler(sys.stderr)
    root = logging.getLogger("ztp")
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


async def run_gateway(
    gateway: object, host: str, port: int, metrics: tuple[str, int] | None
) -> None:
    """Start ``gateway`` (a :class:`~._server.Gateway`), serve until SIGINT/SIGTERM, then shut
    down gracefully (see :meth:`~._server.Gateway.close`; a second signal cuts off at once)."""
    from ._server import Gateway

    assert isinstance(gateway, Gateway)
    bind_listener(host, port, "--listen").close()  # a taken port: one line, not a traceback
    if metrics is not None:
        bind_listener(*metrics, "--metrics-listen").close()
    try:
        bound = await gateway.start(host, port)
    except OSError as exc:
        raise click.ClickException(
            f"--listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    metrics_server = None
    if metrics is not None:
        metrics_server, m_port = start_metrics_server(gateway.metrics.registry, *metrics)
        click.echo(f"metrics on http://{metrics[0]}:{m_port}/metrics", err=True)
    click.echo(f"gateway {gateway.config.name} listening on {bound[0]}:{bound[1]}", err=True)
    try:
        await wait_for_signal(gateway)
    finally:
        await gateway.close()
        await gateway.service.aclose()
        if metrics_server is not None:
            metrics_server.shutdown()  # type: ignore[attr-defined]
            metrics_server.server_close()  # type: ignore[attr-defined]
        flush_logs()


async def wait_for_signal(gateway: object) -> None:
    """Return on the first SIGINT/SIGTERM; a later one calls ``gateway.cut_off()``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            gateway.cut_off()  # type: ignore[attr-defined]
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()


def start_metrics_server(registry: object, host: str, port: int) -> tuple[object, int]:
    """Serve Prometheus ``/metrics`` of ``registry`` in a thread; returns (server, bound port)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, host, registry=registry)  # type: ignore[arg-type]
    return server, server.server_address[1]


@click.command("gateway")
@click.option("--service", "service_url", required=True, help="Base URL of the service.")
@click.option(
    "--credentials-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Instead of a fixed token: a file with the gateway's client id and secret on two "
    "lines; the gateway logs in and logs in again when its token expires.",
)
@click.option(
    "--token-file",
    required=False,
    type=click.Path(path_type=Path, dir_okay=False),
    help="File holding the gateway's bearer token (scope gateway).",
)
@click.option("--listen", default="127.0.0.1:8443", show_default=True,
              help="HOST:PORT (or PORT) for SIMs.")
@click.option(
    "--name",
    default=socket.gethostname(),
    show_default=True,
    help="Gateway name sent as X-ZTP-Gateway and in audit events.",
)
@click.option(
    "--metrics-listen",
    "--metrics",
    "metrics_listen",
    default=None,
    help="HOST:PORT (or PORT) to serve Prometheus /metrics on (off by default; --metrics is "
    "the old spelling).",
)
@click.option("--handshake-timeout", default=30.0, show_default=True, help="Seconds.")
@click.option("--idle-timeout", default=20.0, show_default=True, help="Seconds.")
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    help="Seconds from handshake to the complete request.",
)
@click.option(
    "--max-connections",
    default=4096,
    show_default=True,
    help="Connections at once, shared fairly between client addresses.",
)
@click.option(
    "--shutdown-grace",
    default=5.0,
    show_default=True,
    help="Seconds: on SIGTERM/SIGINT stop accepting, let open connections finish this long, "
    "then cut them off (a second signal cuts off at once).",
)
@click.option(
    "--identity-rate",
    default=10.0,
    show_default=True,
    help="Requests per minute per verified SIM (burst: half of it, at least 1).",
)
@click.option(
    "--address-rate",
    default=250.0,
    show_default=True,
    help="New connections per second per client address (burst 10x).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--event-loop",
    type=click.Choice(EVENT_LOOPS),
    default=None,
    help="auto (the default, or $ZTP_EVENT_LOOP): uvloop when installed (the server extra "
    "installs it on Linux and macOS), else asyncio's own loop.",
)
def gateway_command(
    service_url: str,
    credentials_file: Path | None,
    token_file: Path | None,
    listen: str,
    name: str,
    metrics_listen: str | None,
    handshake_timeout: float,
    idle_timeout: float,
    request_timeout: float,
    max_connections: int,
    shutdown_grace: float,
    identity_rate: float,
    address_rate: float,
    log_level: str,
    event_loop: str | None,
) -> None:
    """Run a TLS 1.3 PSK gateway for SIMs in front of a configuration service.

    It runs on uvloop when uvloop is installed (see --event-loop)."""
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
            shutdown_grace_s=shutdown_grace,
            identity_rate=RateLimit.per_minute(identity_rate, max(1, int(identity_rate // 2))),
            address_rate=RateLimit(address_rate, max(1, int(address_rate * 10))),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if (token_file is None) == (credentials_file is None):
        raise click.UsageError("give exactly one of --token-file and --credentials-file")
    token = read_token_file(token_file) if token_file is not None else None
    credentials = read_credentials_file(credentials_file) if credentials_file else None

    async def main() -> None:
        gw = Gateway(ServiceClient(service_url, token, name, credentials=credentials), config)
        await run_gateway(gw, host, port, metrics)

    run_event_loop(main(), event_loop)
