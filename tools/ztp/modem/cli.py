"""``ztp modem``: run the virtual SARA-U201 with a virtual SIM loaded from its state file."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import click

from ztp.listen import parse_hostport
from ztp.modem._at_state import Registration
from ztp.modem._faults import Faults, LatencyModel
from ztp.modem._habits import Habits
from ztp.modem._modem import VirtualModem
from ztp.modem._network import Network

_REGISTRATION = {
    "home": Registration.HOME,
    "roaming": Registration.ROAMING,
    "denied": Registration.DENIED,
    "none": Registration.SEARCHING,
}


def _parse_dns(entries: tuple[str, ...]) -> dict[str, str]:
    table = {}
    for entry in entries:
        name, sep, ip = entry.partition("=")
        if not sep or not name or not ip:
            raise click.BadParameter(f"expected NAME=IPV4, got {entry!r}", param_hint="--dns")
        table[name] = ip
    return table


@click.command("modem")
@click.option("--sim-state", "sim_state", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="State file of the virtual SIM (ztp.sim.VirtualSim.load).")
@click.option("--pty/--no-pty", default=True, show_default=True,
              help="Expose the UART on a pseudo-terminal.")
@click.option("--tcp", "tcp", metavar="HOST:PORT", default=None,
              help="Also expose the UART on TCP (pyserial socket://HOST:PORT).")
@click.option("--dns", "dns", multiple=True, metavar="NAME=IPV4",
              help="Entries of the network's DNS server (repeatable).")
@click.option("--baud", type=int, default=None, help="Pace the UART at this bit rate.")
@click.option("--rtt-ms", type=int, default=0, show_default=True, help="Network round trip.")
@click.option("--registration-delay-ms", type=int, default=0, show_default=True)
@click.option("--boot-ms", type=int, default=0, show_default=True)
@click.option("--reboot-ms", type=int, default=LatencyModel.reboot_ms, show_default=True,
              help="Deaf after a reboot or reset (SARA-U2: a few seconds).")
@click.option("--sim-init-ms", type=int, default=LatencyModel.sim_init_ms, show_default=True,
              help="SIM busy after that boot.")
@click.option("--registration", type=click.Choice(sorted(_REGISTRATION)), default="home",
              show_default=True, help="Network registration outcome ('none' = no network).")
@click.option("--data-only", is_flag=True, help="Data-only SIM: +CREG never registers.")
@click.option("--greeting", default=None, help="Greeting text sent after boot (+CSGT).")
@click.option("--rts-off", is_flag=True,
              help="RTS not driven (as a floating pin): output held until AT&K0.")
@click.option("--min-command-gap-ms", type=int, default=0, show_default=True,
              help="Lose commands sent sooner than this after a response (SARA-U2: 20).")
@click.option("--csim-refuse", "csim_refuse", multiple=True,
              type=click.Choice(["manage-channel", "get-response"]),
              help="AT+CSIM refuses this APDU (+CME ERROR: 3); repeatable.")
@click.option("-v", "--verbose", count=True, help="Log modem activity (-vv: debug).")
def modem_command(
    sim_state: str, pty: bool, tcp: str | None, dns: tuple[str, ...], baud: int | None,
    rtt_ms: int, registration_delay_ms: int, boot_ms: int, reboot_ms: int, sim_init_ms: int,
    registration: str,
    data_only: bool, greeting: str | None, rts_off: bool, min_command_gap_ms: int,
    csim_refuse: tuple[str, ...], verbose: int,
) -> None:
    """Run the virtual modem until interrupted; prints where the host can connect."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(name)s %(message)s")
    if not pty and tcp is None:
        raise click.UsageError("nothing to serve: give --pty and/or --tcp")
    try:
        network = Network(_parse_dns(dns))
        latency = LatencyModel(uart_baud=baud, network_rtt_ms=rtt_ms,
                               registration_delay_ms=registration_delay_ms, boot_ms=boot_ms,
                               reboot_ms=reboot_ms, sim_init_ms=sim_init_ms)
        faults = Faults(registration=_REGISTRATION[registration], data_only=data_only)
        habits = Habits(rts_asserted=not rts_off, min_command_gap_ms=min_command_gap_ms,
                        csim_refuses_manage_channel="manage-channel" in csim_refuse,
                        csim_refuses_get_response="get-response" in csim_refuse)
    except ValueError as err:
        raise click.BadParameter(str(err)) from err
    endpoint = parse_hostport(tcp, option="--tcp") if tcp is not None else None
    try:
        from ztp.sim import VirtualSim  # noqa: PLC0415 - the SIM package is optional here
    except ImportError as err:
        raise click.ClickException(f"the virtual SIM (ztp.sim) is not available: {err}") from err
    sim = VirtualSim.load(sim_state)

    async def main() -> None:
        modem = VirtualModem(sim, network=network, latency=latency, faults=faults,
                             greeting=greeting, habits=habits)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with modem:
            if pty:
                click.echo(f"pty: {await modem.serve_pty()}")
            if endpoint is not None:
                host, port = await modem.serve_tcp(*endpoint)
                click.echo(f"tcp: socket://{host}:{port}")
            click.echo(f"dns: {network.dns_address} (udp port {network.dns_port})")
            await stop.wait()

    asyncio.run(main())
