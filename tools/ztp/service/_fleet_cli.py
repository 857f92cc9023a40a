"""``ztp devices``, ``ztp fleets`` and ``ztp rollouts``: device state, label configurations
and staged rollouts from the command line (issue 17; docs/service.md "Devices, fleets and
rollouts"). They talk to a running service with the token of ``ztp login``, like ``ztp sims``.
"""

from __future__ import annotations

from pathlib import Path
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


def _body_text(body: str | None, body_file: Path | None) -> str:
    if (body is None) == (body_file is None):
        raise click.UsageError("give BODY or --file, not both or neither")
    if body_file is not None:
        return body_file.read_text(encoding="utf-8").rstrip("\n")
    assert body is not None
    return body


_file_option = click.option("--file", "body_file", type=click.Path(
    exists=True, dir_okay=False, path_type=Path), help="read the body from this file")


# ---------------------------------------------------------------------------- devices


def _reported(d: dict[str, Any]) -> tuple[str, str, str]:
    rep = d.get("reported")
    if not rep:
        return "", "", ""
    outcome = rep["outcome"] + (" +confirmed" if rep.get("confirmed") else "")
    return outcome, "" if rep["code"] is None else str(rep["code"]), rep.get("version") or ""


@click.group("devices")
def devices_group() -> None:
    """Devices the service has seen: what they should hold, got and reported."""


@devices_group.command("list")
@url_option
@click.option("--failed", "state", flag_value="failed", help="only devices that turned the "
              "desired configuration down (rejected, rolled back)")
@click.option("--pending", "state", flag_value="pending", help="only devices not in sync yet")
@click.option("--in-sync", "state", flag_value="in_sync", help="only devices in sync")
@click.option("--label", default=None, help="key=value: only SIMs with this label")
@click.option("--limit", type=int, default=1000, show_default=True)
@json_option
@wide_option
def devices_list(url: str | None, state: str | None, label: str | None, limit: int,
                 as_json: bool, wide: bool) -> None:
    """One line per device: state, desired source/version, reported outcome and code."""
    params: dict[str, Any] = {"limit": limit}
    if state:
        params["state"] = state
    if label:
        params["label"] = label
    with operator_client(url) as c:
        rows = c.devices(**params)
    if as_json:
        print_json(rows)
        return
    out = []
    for d in rows:
        want = d["desired"]
        outcome, code, version = _reported(d)
        out.append([d["iccid"], d["device_id"], d["state"],
                    f"{want['source']} v{want['version']}" if want else "",
                    outcome, code, version, utc_text((d.get("reported") or {}).get("at_ms"))])
    print_table("Devices", ["ICCID", "device", "state", "desired", "reported", "code", "version",
                       "reported at (UTC)"], out, keys=("ICCID", "device", "state"), wide=wide)


@devices_group.command("show")
@url_option
@click.argument("iccid")
@click.argument("device_id")
@json_option
def devices_show(url: str | None, iccid: str, device_id: str, as_json: bool) -> None:
    """One device: desired, delivered and reported configuration."""
    with operator_client(url) as c:
        d = c.device(iccid, device_id)
    if as_json:
        print_json(d)
        return
    click.echo(f"{d['iccid']} {d['device_id']}: {d['state']}")
    want, got, rep = d["desired"], d["delivered"], d["reported"]
    if want:
        extra = f", rollout {want['rollout']}" if want.get("rollout") else ""
        click.echo(f"  desired    {want['source']} version {want['version']} "
                   f"{want['digest']}{extra}")
    else:
        click.echo("  desired    nothing (no configuration of its own, default or label)")
    if got:
        click.echo(f"  delivered  {got['source']} version {got['version']} {got['digest']} "
                   f"at {utc_text(got['at_ms'])}")
    if rep:
        click.echo(f"  reported   {rep['outcome']} (code {rep['code']}) "
                   f"{rep['digest'] or 'no configuration'}"
                   + (f" version {rep['version']}" if rep.get("version") else "")
                   + (", confirmed" if rep.get("confirmed") else "")
                   + (f", turned down {rep['rejected']}" if rep.get("rejected") else "")
                   + f" at {utc_text(rep['at_ms'])}")
    else:
        click.echo("  reported   nothing yet")


# ---------------------------------------------------------------------------- fleets


@click.group("fleets")
def fleets_group() -> None:
    """Configurations by SIM label (key=value), chosen after the device's own and the SIM's
    default; the highest priority wins among matching labels (priorities are unique)."""


@fleets_group.command("set")
@url_option
@click.argument("label")
@click.argument("body", required=False)
@_file_option
@click.option("--priority", type=int, default=None,
              help="required for a new label; default: keep the current one")
@click.option("--require-json/--no-require-json", default=None)
@click.option("--comment", default=None)
def fleets_set(url: str | None, label: str, body: str | None, body_file: Path | None,
               priority: int | None, require_json: bool | None, comment: str | None) -> None:
    """Set the body of LABEL (key=value) for all its devices at once (staged: `ztp rollouts
    start`)."""
    text = _body_text(body, body_file)
    with operator_client(url) as c:
        if priority is None:
            priority = c.label_config(label)["priority"]
        out = c.set_label_config(label, text, priority, require_json=require_json,
                                 comment=comment)
    click.echo(f"{out['label']}: version {out['version']}, priority {out['priority']}, "
               f"{out['digest']}")


@fleets_group.command("list")
@url_option
@json_option
@wide_option
def fleets_list(url: str | None, as_json: bool, wide: bool) -> None:
    """Label configurations, highest priority first."""
    with operator_client(url) as c:
        rows = c.label_configs()
    if as_json:
        print_json(rows)
        return
    print_table("Label configurations", ["label", "priority", "version", "rollout", "digest",
                                    "body"],
           [[r["label"], r["priority"], r["version"], r["rollout"] or "", r["digest"],
             r["body"]] for r in rows], keys=("label", "priority"), below=("body",),
           wide=wide)


@fleets_group.command("show")
@url_option
@click.argument("label")
@json_option
def fleets_show(url: str | None, label: str, as_json: bool) -> None:
    with operator_client(url) as c:
        r = c.label_config(label)
    if as_json:
        print_json(r)
        return
    click.echo(f"{r['label']}: priority {r['priority']}, version {r['version']} "
               f"{r['digest'] or ''}" + (f", rollout {r['rollout']} open" if r["rollout"]
                                         else ""))
    if r["body"] is not None:
        click.echo(r["body"])


@fleets_group.command("delete")
@url_option
@click.argument("label")
def fleets_delete(url: str | None, label: str) -> None:
    """Remove LABEL's configuration (its devices fall to the next matching label)."""
    with operator_client(url) as c:
        c.delete_label_config(label)
    click.echo(f"{label}: removed")


# ---------------------------------------------------------------------------- rollouts


def _rollout_lines(r: dict[str, Any]) -> list[str]:
    stages = r["stages"]
    stage = (f"stage {r['stage'] + 1}/{len(stages)} "
             f"({'listed devices' if stages[r['stage']] == 0 else str(stages[r['stage']]) + ' %'})")
    lines = [f"rollout {r['id']} of {r['label']}: {r['state']}, {stage}, version "
             f"{r['from_version']} -> {r['to_version']} ({r['digest']}), max failures "
             f"{r['max_failures']}" + (f"; {r['reason']}" if r.get("reason") else "")]
    n = r.get("counts")
    if n:
        lines.append(f"  devices {n['devices']}: this stage {n['in_stage']} (confirmed "
                     f"{n['confirmed']}, failed {n['failed']}, pending {n['pending']}); got "
                     f"the new body {n['delivered']}; per stage {n['stage_devices']}")
    return lines


@click.group("rollouts")
def rollouts_group() -> None:
    """Staged rollouts of a label configuration's new body (widened when a stage confirmed
    it, stopped past --max-failures, abort = stop + roll back)."""


@rollouts_group.command("start")
@url_option
@click.argument("label")
@click.argument("body", required=False)
@_file_option
@click.option("--stages", default="10,50,100", show_default=True,
              help="cumulative percentages of the label's devices (100 is added last)")
@click.option("--device", "devices", multiple=True,
              help="ICCID or ICCID/DEVICEID that goes first (repeatable)")
@click.option("--max-failures", type=int, default=0, show_default=True,
              help="stop when more devices than this reject or roll the body back")
@click.option("--priority", type=int, default=None, help="for a label without configuration")
@click.option("--require-json/--no-require-json", default=None)
@click.option("--comment", default=None)
@json_option
def rollouts_start(url: str | None, label: str, body: str | None, body_file: Path | None,
                   stages: str, devices: tuple[str, ...], max_failures: int,
                   priority: int | None, require_json: bool | None, comment: str | None,
                   as_json: bool) -> None:
    """Start rolling BODY out to LABEL's devices, stage by stage."""
    text = _body_text(body, body_file)
    try:
        percents = [int(p) for p in stages.split(",") if p.strip()]
    except ValueError:
        raise click.UsageError("--stages: comma-separated whole percentages") from None
    with operator_client(url) as c:
        r = c.start_rollout(label, text, stages=percents, devices=list(devices) or None,
                            max_failures=max_failures, priority=priority,
                            require_json=require_json, comment=comment)
    if as_json:
        print_json(r)
        return
    click.echo("\n".join(_rollout_lines(r)))


@rollouts_group.command("status")
@url_option
@click.argument("rollout_id", type=int, required=False)
@click.option("--label", default=None, help="key=value: only this label's rollouts")
@json_option
@wide_option
def rollouts_status(url: str | None, rollout_id: int | None, label: str | None,
                    as_json: bool, wide: bool) -> None:
    """One rollout with its device counts, or the list (newest first)."""
    with operator_client(url) as c:
        if rollout_id is not None:
            r = c.rollout(rollout_id)
            if as_json:
                print_json(r)
            else:
                click.echo("\n".join(_rollout_lines(r)))
            return
        rows = c.rollouts(**({"label": label} if label else {}))
    if as_json:
        print_json(rows)
        return
    print_table("Rollouts", ["id", "label", "state", "stage", "versions", "started (UTC)",
                        "reason"],
           [[r["id"], r["label"], r["state"], f"{r['stage'] + 1}/{len(r['stages'])}",
             f"{r['from_version']} -> {r['to_version']}", utc_text(r["created_ms"]),
             r["reason"]] for r in rows], keys=("id", "label", "state"), wide=wide)


def _change(action: str, help_text: str) -> None:
    @rollouts_group.command(action, help=help_text)
    @url_option
    @click.argument("rollout_id", type=int)
    @json_option
    def command(url: str | None, rollout_id: int, as_json: bool) -> None:
        with operator_client(url) as c:
            r = c.rollout(rollout_id, action)
        if as_json:
            print_json(r)
            return
        click.echo("\n".join(_rollout_lines(r)))


_change("pause", "Stop widening (the current stage keeps the new body).")
_change("resume", "Widen again (a paused rollout; evaluated at once).")
_change("abort", "Stop and roll back: the previous body is desired again for every device.")
