"""``ztp serve``: the configuration service and a gateway in one process, with embedded
defaults (a ``ztp.stack.Stack`` without the modem)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ztp.listen import bind_listener, parse_hostport

__all__ = ["serve_command"]


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
    from sqlalchemy.exc import SQLAlchemyError

    from ztp.gateway import (
        GatewayConfig,
        run_event_loop,
        setup_logging,
        start_metrics_server,
        wait_for_signal,
    )
    from ztp.service import (
        CREDENTIALS_FILE,
        CredentialsError,
        MasterKeyError,
        Settings,
        default_data_dir,
        load_or_bootstrap_credentials,
    )

    from ._stack import Stack, StackError, StackOptions

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
        except CredentialsError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise _database_error(settings.database_url, exc) from None
    except BaseException:
        sock.close()
        raise
    options = StackOptions(
        data_dir=ddir, settings=settings, credentials=creds, service_listen=(s_host, s_port),
        service_socket=sock, gateway_listen=(g_host, g_port),
        gateway_config=GatewayConfig(name="embedded", shutdown_grace_s=shutdown_grace),
        with_modem=False, record_events=False)

    async def main() -> None:
        try:
            # a graceful exit: the gateway first, the service keeps answering until it is done
            async with Stack(options) as stack:
                await serve(stack)
        except StackError as exc:
            raise click.ClickException(str(exc)) from None
        except MasterKeyError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            raise _database_error(settings.database_url, exc) from None

    async def serve(stack: Stack) -> None:
        metrics_server = None
        m_url = None
        if metrics is not None:
            try:
                metrics_server, m_port = start_metrics_server(stack.gateway.metrics.registry,
                                                              *metrics)
            except OSError as exc:
                raise click.ClickException(
                    f"--metrics-listen: cannot listen: {exc.strerror or exc}") from None
            m_url = f"http://{metrics[0]}:{m_port}/metrics"
        url = stack.service_url
        click.echo(f"data directory: {ddir}")
        click.echo(f"credentials: {ddir / CREDENTIALS_FILE}" + (" (created)" if created else ""))
        click.echo(f"service: {url}")
        click.echo(f"service metrics: {url}/metrics")
        click.echo(f"api docs: {url}/docs")
        click.echo(f"console: {url}/console (accounts: ztp users add NAME --role operator)")
        if m_url is not None:
            click.echo(f"gateway metrics: {m_url}")
        click.echo(f"login: ztp login --url {url} --credentials {ddir / CREDENTIALS_FILE}")
        click.echo(f"gateway: {stack.gateway_host}:{stack.gateway_port}", nl=True)
        sys.stdout.flush()
        try:
            await wait_for_signal(stack.gateway)
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()  # type: ignore[attr-defined]
                metrics_server.server_close()  # type: ignore[attr-defined]

    # the gateway's event loop (uvloop when installed): service and gateway share it here
    run_event_loop(main())


def _database_error(database_url: str, exc: Exception) -> click.ClickException:
    """One line: where and why, no statement, no user or password."""
    where = database_url.split("@")[-1]
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
    return click.ClickException(f"database {where}: {reason[0]}")
