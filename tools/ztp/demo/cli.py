"""``ztp demo``: the whole provisioning path on this machine, with a readable transcript."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

__all__ = ["demo_command", "run_demo"]


def run_demo(
    data_dir: Path | None = None,
    *,
    verbose: bool = False,
    quiet: bool = False,
    rtt_ms: int = 50,
    registration_ms: int = 500,
    slow_sim: bool = False,
    rerun: bool = True,
    console: object = None,
) -> int:
    """Run the demo; returns the process exit code (0 = configuration applied or unchanged).

    Args mirror the command's options; ``console`` is a ``rich.console.Console`` (tests).
    """
    from rich.console import Console
    from rich.text import Text

    from ztp.modem import LatencyModel
    from ztp.sim import CostModel
    from ztp.stack import StackError, StackOptions

    from ._stack import Stack
    from ._transcript import Transcript

    con = console if isinstance(console, Console) else Console(highlight=False, soft_wrap=True)
    transcript = Transcript(con, verbose=verbose, quiet=quiet)
    con.print(Text("ztp demo: zero-touch provisioning over a SAFE2 SIM, every part on this "
                   "machine (loopback only)", style="bold"))
    con.print(Text("firmware lib/ --AT over a pty (pyserial)--> virtual SARA modem --APDUs--> "
                   "virtual SIM --BIP: DNS, TCP, TLS 1.3 PSK--> gateway --HTTP--> service",
                   style="dim"))
    options = StackOptions(
        data_dir=data_dir,
        latency=LatencyModel(uart_baud=115200, network_rtt_ms=rtt_ms,
                             registration_delay_ms=registration_ms),
        sim_cost=CostModel() if slow_sim else CostModel().after_pps(),
    )
    t0 = time.monotonic()

    def fail(msg: str, code: int) -> int:
        con.print(Text(f"\ndemo FAILED: {msg}", style="bold red"))
        return code

    async def main() -> int:
        async with Stack(options, listener=transcript) as stack:
            # reports on, as the board: this run stores its report, the re-run sends it
            first = await stack.provision(reports=True)
            transcript.heading("summary of the provisioning")
            transcript.summary(first)
            if not first.ok:
                return fail(f"the firmware ended with {first.name} ({first.code}): "
                            f"{first.detail}", first.code)
            verdict = "applied" if first.code == 0 else "unchanged (already in force)"
            con.print(Text(f"        result: configuration {verdict} in "
                           f"{first.elapsed_s:.1f} s", style="bold green"))
            if rerun:
                transcript.muted = True
                second = await stack.provision(
                    reports=True,
                    label="re-run of the firmware (same SIM, same configuration; it sends "
                          "the first run's report before the fetch)")
                transcript.muted = False
                if second.code != 1:
                    return fail(f"the re-run ended with {second.name} ({second.code}): "
                                f"{second.detail}; expected UNCHANGED", second.code or 3)
                con.print(Text(f"        re-run: the SIM fetched the same configuration; the "
                               f"firmware did not apply it again (UNCHANGED, "
                               f"{second.elapsed_s:.1f} s)", style="green"))
            # the loop closed: what the service recorded from the device's report
            view = await asyncio.to_thread(stack.admin.device, options.iccid,
                                           options.device_id.hex())
            transcript.device_state(view)
            if rerun and view.get("state") != "in_sync":
                return fail(f"the service shows the device {view.get('state')} after its "
                            f"report; expected in_sync", 3)
            return 0

    try:
        code = asyncio.run(main())
    except StackError as err:
        return fail(str(err), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    if code == 0:
        where = f"state kept in {data_dir}" if data_dir else "temporary data removed"
        con.print(Text(f"\ndemo OK in {time.monotonic() - t0:.1f} s ({where})",
                       style="bold green"))
    return code


@click.command("demo")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Keep service, SIM and device state here (default: a temporary directory). "
                   "Run twice with the same directory: the second run finds the "
                   "configuration unchanged.")
@click.option("-v", "--verbose", is_flag=True, help="Whole AT lines, every socket send.")
@click.option("-q", "--quiet", is_flag=True, help="Only the steps and the result.")
@click.option("--rtt-ms", default=50, show_default=True, help="Network round-trip time.")
@click.option("--registration-ms", default=500, show_default=True,
              help="Time the modem takes to register.")
@click.option("--slow-sim", is_flag=True,
              help="SIM interface at 9600 bit/s (no PPS), as many real cards: slower.")
@click.option("--rerun/--no-rerun", default=True, show_default=True,
              help="Run the firmware a second time (the unchanged configuration is skipped).")
def demo_command(data_dir: Path | None, verbose: bool, quiet: bool, rtt_ms: int,
                 registration_ms: int, slow_sim: bool, rerun: bool) -> None:
    """The end-to-end demo: service + gateway + virtual modem/SIM + the firmware's lib/.

    Exits 0 when the configuration was applied (or was already in force), else non-zero:
    the firmware's result code, or 2 when a part of the stack could not start.
    """
    code = run_demo(data_dir, verbose=verbose, quiet=quiet, rtt_ms=rtt_ms,
                    registration_ms=registration_ms, slow_sim=slow_sim, rerun=rerun)
    sys.exit(code)
