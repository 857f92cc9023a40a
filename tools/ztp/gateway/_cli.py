"""``ztp gateway``: run one TLS 1.3 PSK gateway in front of a configuration service."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import stat
import sys
from pathlib import Path

import click

from ztp.listen import bind_listener, parse_hostport

from ._limits import RateLimit
from ._log import JsonFormatter, log_event

__all__ = ["gateway_command", "parse_hostport", "setup_logging", "run_gateway"]


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

    asyncio.run(main())


CREDENTIALS_FILE = "credentials.json"


def load_or_bootstrap_credentials(settings: object, data_dir: Path) -> tuple[dict[str, str], bool]:
    """The admin and gateway credentials of ``ztp serve``: read from ``<data_dir>/
    credentials.json``, or created in the database and written there (mode 0600) on first start.

    Returns (credentials, created).

    Raises:
        click.ClickException: the database already has the clients but the file is gone.
    """
    import json

    from ztp.service import ServiceError, bootstrap_credentials

    path = data_dir / CREDENTIALS_FILE
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise click.ClickException(f"{path} is unreadable or not JSON") from None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str)
            for k in ("admin_id", "admin_secret", "gateway_id", "gateway_secret")
        ):
            raise click.ClickException(f"{path} is malformed")
        return data, False
    try:
        creds = bootstrap_credentials(settings)  # type: ignore[arg-type]
    except ServiceError as exc:
        raise click.ClickException(
            f"cannot create the default credentials ({exc}); the database already has them "
            f"but {path} is missing: restore it or create new clients with the service CLI"
        ) from None
    data = {
        "admin_id": creds.admin_id,
        "admin_secret": creds.admin_secret,
        "gateway_id": creds.gateway_id,
        "gateway_secret": creds.gateway_secret,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    return data, True


@click.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Data directory (default $ZTP_DATA_DIR or ~/.local/share/ztp).",
)
@click.option(
    "--service-listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="HOST:PORT (or PORT) of the service's HTTP API (port 0: any free port).",
)
@click.option(
    "--gateway-listen",
    default="127.0.0.1:8443",
    show_default=True,
    help="HOST:PORT (or PORT) of the TLS gateway for SIMs (port 0: any free port).",
)
@click.option(
    "--metrics-listen",
    "--metrics",
    "metrics_listen",
    default=None,
    help="HOST:PORT (or PORT) for the gateway's Prometheus /metrics (off by default; the "
    "service's own metrics are at /metrics of --service-listen; --metrics is the old spelling).",
)
@click.option(
    "--smsc-url",
    envvar="ZTP_SMSC_URL",
    default=None,
    help="SMS centre for OTA key rotation [env ZTP_SMSC_URL] (none: `ztp rotate` refuses, "
    "`ztp rotate --no-send` queues).",
)
@click.option(
    "--token-ttl",
    "token_ttl_s",
    envvar="ZTP_TOKEN_TTL_S",
    type=click.IntRange(60, 30 * 86_400),
    default=None,
    help="Access token lifetime in seconds [env ZTP_TOKEN_TTL_S; default 3600].",
)
@click.option(
    "--require-json/--no-require-json",
    envvar="ZTP_REQUIRE_JSON",
    default=None,
    help="Refuse configuration bodies that are not JSON [env ZTP_REQUIRE_JSON; default off].",
)
@click.option(
    "--shutdown-grace",
    default=5.0,
    show_default=True,
    help="Seconds: on SIGTERM/SIGINT stop accepting, let open connections finish this long, "
    "then cut them off (a second signal cuts off at once).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def serve_command(
    data_dir: Path | None,
    service_listen: str,
    gateway_listen: str,
    metrics_listen: str | None,
    smsc_url: str | None,
    token_ttl_s: int | None,
    require_json: bool | None,
    shutdown_grace: float,
    log_level: str,
) -> None:
    """Run the configuration service and a gateway together, with embedded defaults.

    First start: creates the data directory, a SQLite database, a master key and admin +
    gateway credentials (written to credentials.json in the data directory, mode 0600; its
    path is printed, the secrets are not). Both listening sockets are bound before anything
    is written, so a taken port changes nothing.
    """
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from ztp.service import MasterKeyError, Settings, create_app, default_data_dir

    from ._server import Gateway, GatewayConfig
    from ._service import ServiceClient

    setup_logging(log_level)
    s_host, s_port = parse_hostport(service_listen)
    g_host, g_port = parse_hostport(gateway_listen)
    metrics = parse_hostport(metrics_listen) if metrics_listen else None
    # the sockets first: a taken port is one line and leaves no credentials behind
    sock = bind_listener(s_host, s_port, "--service-listen")
    try:
        bind_listener(g_host, g_port, "--gateway-listen").close()
        if metrics is not None:
            bind_listener(*metrics, "--metrics-listen").close()
        ddir = data_dir or default_data_dir()
        try:
            ddir.mkdir(parents=True, exist_ok=True, mode=0o700)
            settings = Settings.from_env(ddir, create_key=True)
        except ValueError as exc:  # MasterKeyError, a malformed ZTP_* setting
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"data directory {ddir}: {exc}") from None
        if smsc_url:
            settings.sms_centre = smsc_url
        if token_ttl_s is not None:
            settings.token_ttl_s = token_ttl_s
        if require_json is not None:
            settings.require_json = require_json
        try:
            creds, created = load_or_bootstrap_credentials(settings, ddir)
            app = create_app(settings)
        except MasterKeyError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:  # one line: no statement, no user or password
            where = settings.database_url.split("@")[-1]
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
            raise click.ClickException(f"database {where}: {reason[0]}") from None
    except BaseException:
        sock.close()
        raise

    async def main() -> None:
        bound_port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        server_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if server_task.done():
                server_task.result()
                raise click.ClickException("the service did not start")
            await asyncio.sleep(0.02)
        url = f"http://{s_host if ':' not in s_host else f'[{s_host}]'}:{bound_port}"
        service = ServiceClient(
            url, None, "embedded", credentials=(creds["gateway_id"], creds["gateway_secret"])
        )
        gw = Gateway(service, GatewayConfig(name="embedded", shutdown_grace_s=shutdown_grace))
        try:
            gw_host, gw_port = await gw.start(g_host, g_port)
            metrics_server = None
            m_url = None
            if metrics is not None:
                metrics_server, m_port = start_metrics_server(gw.metrics.registry, *metrics)
                m_url = f"http://{metrics[0]}:{m_port}/metrics"
        except OSError as exc:
            await service.aclose()
            server.should_exit = True
            await server_task
            sock.close()
            raise click.ClickException(f"gateway: cannot listen: {exc.strerror or exc}") from None
        click.echo(f"data directory: {ddir}")
        click.echo(f"credentials: {ddir / CREDENTIALS_FILE}" + (" (created)" if created else ""))
        click.echo(f"service: {url}")
        click.echo(f"service metrics: {url}/metrics")
        click.echo(f"api docs: {url}/docs")
        if m_url is not None:
            click.echo(f"gateway metrics: {m_url}")
        click.echo(f"login: ztp login --url {url} --credentials {ddir / CREDENTIALS_FILE}")
        click.echo(f"gateway: {gw_host}:{gw_port}", nl=True)
        sys.stdout.flush()
        try:
            await wait_for_signal(gw)
        finally:
            await gw.close()  # graceful: the service keeps answering until the gateway is done
            await service.aclose()
            if metrics_server is not None:
                metrics_server.shutdown()  # type: ignore[attr-defined]
                metrics_server.server_close()  # type: ignore[attr-defined]
            server.should_exit = True
            await server_task
            sock.close()

    asyncio.run(main())
