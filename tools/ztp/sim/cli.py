"""``ztp sim``: personalise, inspect and talk to a virtual SIM state file."""

from __future__ import annotations

import secrets
from pathlib import Path

import click

from ztp.iccid import IccidError

from ._card import VirtualSim
from ._state import CardState, CardStateError


@click.group("sim")
def sim_command() -> None:
    """Virtual SIM with the SAFE2 applet (state kept in a JSON file)."""


@sim_command.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--iccid", required=True, help="ICCID digits (18-20, Luhn-checked).")
@click.option("--psk-hex", help="16-byte PSK as hex; a random one when omitted.")
@click.option("--host", required=True, help="Gateway host name or IP literal.")
@click.option("--port", type=int, default=443, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing state file.")
def init_command(
    path: Path, iccid: str, psk_hex: str | None, host: str, port: int, force: bool
) -> None:
    """Personalise a new card into PATH (mode 0600)."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists (use --force to overwrite)")
    try:
        psk = bytes.fromhex(psk_hex) if psk_hex is not None else secrets.token_bytes(16)
    except ValueError:
        raise click.BadParameter("not hex", param_hint="--psk-hex") from None
    try:
        state = CardState.create(iccid, psk, host, port)
    except (CardStateError, IccidError) as e:
        raise click.ClickException(str(e)) from None
    state.save(path)
    click.echo(f"card {state.iccid} (identity {state.ef_iccid.hex()}) -> {host}:{port}")
    if psk_hex is None:
        click.echo(f"generated PSK: {psk.hex()}  (import it into the service; shown once)")


@sim_command.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show_command(path: Path) -> None:
    """Print the card state (never the PSK)."""
    try:
        state = CardState.load(path)
    except CardStateError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"ICCID      {state.iccid}")
    click.echo(f"identity   {state.ef_iccid.hex()}")
    click.echo(f"gateway    {state.host}:{state.port}")
    click.echo(f"device id  {state.device_id.hex() if state.device_id else '-'}")
    click.echo(
        f"applet     state {state.status:04X} result {state.result:04X}, {len(state.body)} bytes"
    )
    c = state.counters
    click.echo(
        f"counters   apdus {c.apdus} requests {c.requests} attempts {c.attempts} "
        f"ok {c.successes} failed {c.failures} handshakes {c.tls_handshakes}"
    )


@sim_command.command("apdu")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("apdus", nargs=-1, required=True)
def apdu_command(path: Path, apdus: tuple[str, ...]) -> None:
    """Send APDUs (hex) to the card after a reset and print the answers; saves the state.

    Without a toolkit terminal the applet cannot reach the network: use the virtual modem.
    """
    try:
        sim = VirtualSim.load(path)
    except CardStateError as e:
        raise click.ClickException(str(e)) from None
    sim.reset()
    for text in apdus:
        try:
            apdu = bytes.fromhex(text.replace(" ", ""))
        except ValueError:
            raise click.BadParameter(f"not hex: {text!r}") from None
        resp = sim.transmit(apdu, 0)
        click.echo(f"> {apdu.hex().upper()}\n< {resp.hex().upper()}  ({sim.last_cost_ms:.1f} ms)")
    sim.save()
