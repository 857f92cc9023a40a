"""``ztp rotate`` and ``ztp rotations``: OTA PSK rotation from the command line (docs/ota.md).

They talk to a running service with the token saved by ``ztp login`` (``$ZTP_URL`` /
``$ZTP_TOKEN`` override it), like ``ztp sims``.
"""

from __future__ import annotations

from typing import Any

import click

from ._cli_common import (
    json_option,
    operator_client,
    print_json,
    print_table,
    url_option,
    utc_text,
    wide_option,
)


def _when(ms: int | None) -> str:
    return utc_text(ms)  # one time format in every table: UTC to the second


def _progress_line(p: dict[str, Any]) -> str:
    states = p["states"]
    return (f"batch {p['batch']}: {p['done']}/{p['total']} retired"
            f" | pending {states.get('pending', 0)}, delivered {states.get('delivered', 0)},"
            f" confirmed {states.get('confirmed', 0)}, failed {states.get('failed', 0)},"
            f" cancelled {states.get('cancelled', 0)}"
            f" | overdue {p['overdue']}")


def _run(client: Any) -> dict[str, Any]:
    return client.request("POST", "/v1/rotations/run").json()


@click.command("rotate")
@url_option
@click.argument("iccids", nargs=-1)
@click.option("--all", "all_sims", is_flag=True, help="every active SIM with OTA keys")
@click.option("--send/--no-send", default=True, show_default=True,
              help="send the packets now; --no-send queues them for `ztp rotations run` "
                   "(also when no SMS centre is configured yet). With --send and no SMS "
                   "centre the service refuses before changing anything")
@click.option("--retry-after", type=int, default=None, help="seconds to wait for a PoR")
@click.option("--overdue-after", type=int, default=None,
              help="seconds after which an unconfirmed rotation is overdue")
@json_option
def rotate_command(url: str | None, iccids: tuple[str, ...], all_sims: bool, send: bool,
                   retry_after: int | None, overdue_after: int | None, as_json: bool) -> None:
    """Rotate the PSK of SIMs over the air (a new key; the old one stays until the SIM has
    used the new one)."""
    if bool(iccids) == all_sims:
        raise click.UsageError("give ICCIDs or --all (not both)")
    body: dict[str, Any] = {"all": True} if all_sims else {"iccids": list(iccids)}
    if not send:
        body["queue"] = True
    policy = {k: v for k, v in (("retry_after_s", retry_after),
                                ("overdue_after_s", overdue_after)) if v is not None}
    if policy:
        body["policy"] = policy
    with operator_client(url) as client:
        started = client.request("POST", "/v1/rotations", json=body).json()
        sent = _run(client) if send and started["started"] else None
        progress = client.request("GET", f"/v1/rotations/batches/{started['batch']}").json() \
            if started["started"] else None
    if as_json:
        print_json({"started": started, "sent": sent, "progress": progress})
        return
    click.echo(f"batch {started['batch']}: {started['started']} rotation(s) started")
    if started.get("queued"):
        click.echo("  queued: no SMS centre is configured; `ztp rotations run` sends them once "
                   "one is (ztp service serve --smsc-url / ZTP_SMSC_URL)")
    for s in started["skipped"]:
        click.echo(f"  skipped {s['iccid']}: {s['reason']}")
    if sent is not None:
        click.echo(f"sent {sent['sent']}: PoR installed {sent.get('por_installed', 0)}, "
                   f"no PoR {sent.get('no_por', 0)}, failed {sent.get('failed', 0)}")
    if progress is not None:
        click.echo(_progress_line(progress))


@click.group("rotations", invoke_without_command=True)
@url_option
@click.option("--batch", default=None, help="one batch ('latest' for the newest)")
@click.option("--state", type=click.Choice(["pending", "delivered", "confirmed", "retired",
                                            "failed", "cancelled"]), default=None)
@click.option("--overdue", is_flag=True, help="only overdue rotations")
@click.option("--limit", type=int, default=1000, show_default=True)
@json_option
@wide_option
@click.pass_context
def rotations_group(ctx: click.Context, url: str | None, batch: str | None, state: str | None,
                    overdue: bool, limit: int, as_json: bool, wide: bool) -> None:
    """Status of OTA PSK rotations (with the progress of a batch); `run` sends due packets."""
    if ctx.invoked_subcommand is not None:
        return
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if overdue:
        params["overdue"] = "true"
    with operator_client(url) as client:
        progress = None
        if batch:
            progress = client.request("GET", f"/v1/rotations/batches/{batch}").json()
            params["batch"] = progress["batch"]
        rows = client.request("GET", "/v1/rotations", params=params).json()["rotations"]
    if as_json:
        print_json({"progress": progress, "rotations": rows})
        return
    if progress is not None:
        click.echo(_progress_line(progress))
    print_table("OTA PSK rotations", ["ICCID", "state", "keys", "attempts", "last PoR",
                                 "next send (UTC)", "overdue", "batch"],
           [[r["iccid"], r["state"], f"{r['old_tag']} -> {r['new_tag']}", r["attempts"],
             r["last_por"], _when(r["next_due_ms"]), "OVERDUE" if r["overdue"] else "",
             r["batch"]] for r in rows], keys=("ICCID", "state"), wide=wide)


@rotations_group.command("run")
@url_option
@json_option
def rotations_run(url: str | None, as_json: bool) -> None:
    """Send every packet due now (first sends, and resends where no PoR came back)."""
    with operator_client(url) as client:
        sent = _run(client)
    if as_json:
        print_json(sent)
        return
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(sent.items())))


@rotations_group.command("retry")
@url_option
@click.argument("iccid")
def rotations_retry(url: str | None, iccid: str) -> None:
    """Send a failed rotation again at the next run (a failed one is never resent otherwise)."""
    with operator_client(url) as client:
        row = client.request("POST", f"/v1/sims/{iccid}/rotation/retry").json()
    click.echo(f"{row['iccid']}: {row['state']}, will be sent at the next run")


@rotations_group.command("cancel")
@url_option
@click.argument("iccid")
@click.option("--reason", default="", help="why (kept in the audit log)")
@json_option
def rotations_cancel(url: str | None, iccid: str, reason: str, as_json: bool) -> None:
    """Close a failed or stuck rotation. The old key stays; the new key is retired only if the
    SIM certainly does not hold it, otherwise both keys stay accepted."""
    with operator_client(url) as client:
        row = client.request("POST", f"/v1/sims/{iccid}/rotation/cancel",
                             json={"reason": reason} if reason else None).json()
    if as_json:
        print_json(row)
        return
    click.echo(f"{row['iccid']}: cancelled ({row['old_tag']} -> {row['new_tag']}); "
               f"accepted keys now {', '.join(row['accepted_tags'])}")
    click.echo(f"  {row['note']}")


@rotations_group.command("show")
@url_option
@click.argument("iccid")
@json_option
def rotations_show(url: str | None, iccid: str, as_json: bool) -> None:
    """One SIM's latest rotation with its history."""
    with operator_client(url) as client:
        row = client.request("GET", f"/v1/sims/{iccid}/rotation").json()
    if as_json:
        print_json(row)
        return
    click.echo(f"{row['iccid']}: {row['state']} ({row['old_tag']} -> {row['new_tag']}), "
               f"{row['attempts']} attempt(s){', OVERDUE' if row['overdue'] else ''}")
    for h in row["history"]:
        click.echo(f"  {_when(h['at_ms'])}  {h['event']:<20} {h['from']} -> {h['to']}")
