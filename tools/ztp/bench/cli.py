"""``ztp bench ...``: on-demand benchmarks against named references (never run by the tests).

Each subcommand prints a rich table with the ratio to its reference measured in the same run;
``--json FILE`` also writes the raw numbers, ``--markdown`` prints the table for the README.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from ._common import BenchError, Table, print_table

__all__ = ["bench"]


def _emit(make: Callable[[], Table], json_path: Path | None, markdown: bool) -> None:
    try:
        table = make()
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    print_table(table)
    if markdown:
        click.echo(table.to_markdown())
    if json_path is not None:
        json_path.write_text(table.to_json())


def _output_options(f: Callable[..., None]) -> Callable[..., None]:
    f = click.option("--markdown", is_flag=True, help="Also print the table as Markdown.")(f)
    f = click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the table and raw numbers as JSON.",
    )(f)
    return f


@click.group()
def bench() -> None:
    """Benchmarks against references (OpenSSL, stunnel, goals of issue 9)."""


@bench.command("tls")
@click.option("-n", "--handshakes", default=2000, show_default=True, help="Per row.")
@click.option("--cpu", default=0, show_default=True, help="CPU to pin to (-1: no pinning).")
@_output_options
def tls_cmd(handshakes: int, cpu: int, json_path: Path | None, markdown: bool) -> None:
    """Server handshakes/s in memory: ztp.tls vs OpenSSL (psk_ke/CCM, psk_dhe_ke/x25519)."""
    from ._tls import run

    _emit(lambda: run(handshakes, None if cpu < 0 else cpu), json_path, markdown)


@bench.command("gateway")
@click.option("--seconds", default=10.0, show_default=True, help="Measured window per server.")
@click.option(
    "--threads",
    default=6,
    show_default=True,
    help="Concurrent connections (6 leave the client core headroom against stunnel).",
)
@click.option("--identities", default=100, show_default=True, help="Distinct SIMs (PSKs).")
@click.option("--warmup", default=2.0, show_default=True, help="Seconds before measuring.")
@click.option("--server-cpu", default=0, show_default=True, help="-1: no pinning.")
@click.option("--client-cpu", default=1, show_default=True, help="-1: no pinning.")
@click.option("--rounds", default=3, show_default=True, help="Windows per server (alternating).")
@click.option(
    "--full",
    is_flag=True,
    help="The full path instead: gateway + `ztp service serve` (SQLite) vs stunnel + backend.",
)
@_output_options
def gateway_cmd(
    seconds: float,
    threads: int,
    identities: int,
    warmup: float,
    server_cpu: int,
    client_cpu: int,
    rounds: int,
    full: bool,
    json_path: Path | None,
    markdown: bool,
) -> None:
    """Server CPU per exchange, exchanges/s, p50/p99: ztp gateway vs stunnel (and an openssl
    s_server floor), each driven by an OpenSSL and a GnuTLS client. With --full: exchanges/s
    and CPU per exchange of the whole path, gateway + service on SQLite vs stunnel + backend."""
    from ._gateway import run
    from ._gateway_full import run_full

    _emit(
        lambda: (run_full if full else run)(
            seconds,
            threads,
            identities,
            None if server_cpu < 0 else server_cpu,
            None if client_cpu < 0 else client_cpu,
            warmup,
            rounds,
        ),
        json_path,
        markdown,
    )


@bench.command("firmware")
@click.option("--skip-heap", is_flag=True, help="No MicroPython run (code and UART only).")
@_output_options
def firmware_cmd(skip_heap: bool, json_path: Path | None, markdown: bool) -> None:
    """Firmware .mpy size (armv6m), heap per provisioning, UART bytes per provisioning."""
    from ._firmware import run

    _emit(lambda: run(skip_heap), json_path, markdown)


@bench.command("service")
@click.option("--sims", default=1_000_000, show_default=True, help="SIMs with one config each.")
@click.option("--lookups", default=5000, show_default=True, help="Device-endpoint requests.")
@click.option("--batch", default=10_000, show_default=True, help="Rows per import request.")
@click.option(
    "--db", "databases", multiple=True, type=click.Choice(["sqlite", "postgres"]),
    help="Databases to run (default both).",
)  # fmt: skip
@_output_options
def service_cmd(
    sims: int,
    lookups: int,
    batch: int,
    databases: tuple[str, ...],
    json_path: Path | None,
    markdown: bool,
) -> None:
    """Import time, config lookups/s and p99 with N SIMs, SQLite and PostgreSQL."""
    from ._service import run

    _emit(
        lambda: run(sims, lookups, batch, databases or ("sqlite", "postgres")),
        json_path,
        markdown,
    )


@bench.command("provision")
@click.option("--runs", default=3, show_default=True, help="Runs per scenario and schedule.")
@click.option(
    "--reference", type=click.Choice(["run", "compute"]), default="run", show_default=True,
    help="Fixed 10 s polling: run it, or compute it from the default-schedule runs.",
)
@click.option(
    "--schedule", "extra", multiple=True, metavar="FIRST,INTERVAL",
    help="Also run this schedule (ms): a first wait, then a fixed interval. Repeatable.",
)
@click.option(
    "--scenario", "only", multiple=True, metavar="TEXT",
    help="Only the scenarios whose name contains TEXT (e.g. '9600', 'RTT 50'). Repeatable.",
)
@click.option("--cold", is_flag=True, help="Empty the SIM DNS cache before every run.")  # fmt: skip
@_output_options
def provision_cmd(runs: int, reference: str, extra: tuple[str, ...], only: tuple[str, ...],
                  cold: bool, json_path: Path | None, markdown: bool) -> None:
    """Time to provision in the simulator vs the model's floor and 10 s polling."""
    from ._provision import SCENARIOS, run

    scenarios = tuple(s for s in SCENARIOS if not only or any(o in s.name for o in only))
    if not scenarios:
        raise click.BadParameter(f"no scenario matches {only}", param_hint="--scenario")
    _emit(lambda: run(runs, reference, scenarios, extra, cold), json_path, markdown)


@bench.command("storm")
@click.option("--sims", default=1000, show_default=True, help="Virtual SIMs at once.")
@click.option("--rtt-ms", default=0, show_default=True, help="Network RTT per send/connect.")
@click.option("--card-cost", is_flag=True, help="Sleep the SIMs' after-PPS card time.")
@click.option("--deadline", default=120.0, show_default=True, help="Seconds before a SIM fails.")
@click.option("--server-cpu", default=0, show_default=True, help="-1: no pinning.")
@click.option("--driver-cpu", default=1, show_default=True, help="-1: no pinning.")
@_output_options
def storm_cmd(
    sims: int,
    rtt_ms: int,
    card_cost: bool,
    deadline: float,
    server_cpu: int,
    driver_cpu: int,
    json_path: Path | None,
    markdown: bool,
) -> None:
    """Fleet boot storm: N SIMs at once through gateway + service (completion, failures)."""
    from ._storm import run

    _emit(
        lambda: run(
            sims,
            rtt_ms,
            card_cost,
            None if server_cpu < 0 else server_cpu,
            None if driver_cpu < 0 else driver_cpu,
            deadline,
        ),
        json_path,
        markdown,
    )


@bench.command("timing")
@click.option("--identities", default=40, show_default=True, help="Known; as many unknown.")
@click.option("--gap", default=35.0, show_default=True, help="Seconds between the two rounds.")
@click.option(
    "--floor", default=None, type=float,
    help="Override the gateway's PSK lookup floor (seconds; 0 shows what it hides).",
)  # fmt: skip
@click.option("--server-cpu", default=0, show_default=True, help="-1: no pinning.")
@click.option("--client-cpu", default=1, show_default=True, help="-1: no pinning.")
@_output_options
def timing_cmd(
    identities: int,
    gap: float,
    floor: float | None,
    server_cpu: int,
    client_cpu: int,
    json_path: Path | None,
    markdown: bool,
) -> None:
    """Timing probe: can known PSK identities be told from unknown ones (issue 13)?"""
    from ._timing import run

    _emit(
        lambda: run(
            identities,
            gap,
            floor,
            None if server_cpu < 0 else server_cpu,
            None if client_cpu < 0 else client_cpu,
        ),
        json_path,
        markdown,
    )
