"""The console's pages of device state, label (fleet) configurations and staged rollouts
(issue 18 on issue 17's service side; docs/console.md). Paths are under ``/console``; every
change goes through ``_domain`` to the classes the ``/v1`` routes use, so their checks and
audit records apply."""

from __future__ import annotations

from starlette.responses import Response

from .._errors import BadRequest, ServiceError
from .._schemas import parse_iccid
from ._domain import (
    ROLLOUT_ACTIONS,
    change_rollout,
    delete_label_config,
    device_detail,
    label_config_editor,
    list_devices,
    list_label_configs,
    list_rollouts,
    parse_device,
    parse_device_list,
    parse_label_filter,
    parse_prefix,
    parse_priority,
    parse_stages,
    rollout_status,
    save_label_config,
    start_rollout,
)
from ._pages import Ctx, page, redirect

__all__: list[str] = []

FILTER_STATES = ("failed", "pending", "in_sync", "unmanaged")
# what each rollout action does, for its confirmation
ACTION_TEXT = {
    "pause": "Pause: no widening; the devices of the current stage keep the new body.",
    "resume": "Resume: the rollout is evaluated at once and widens when its stage is "
              "confirmed.",
    "abort": "Abort and roll back: the label's previous body becomes desired again for "
             "every device. An aborted rollout cannot be resumed.",
}


def _rollout_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 10 or not 1 <= int(text) \
            <= 2**31 - 1:
        raise BadRequest("rollout id must be a positive integer")
    return int(text)


def _require_json(ctx: Ctx) -> bool | None:
    return True if ctx.form.get("require_json") else None


# ---------------------------------------------------------------------------- devices


@page("GET", "/devices")
def devices(ctx: Ctx) -> Response:
    f = {n: ctx.query(n) for n in ("state", "label", "q")}
    after_text = ctx.query("after")
    try:
        if f["state"] and f["state"] not in FILTER_STATES:
            raise BadRequest(f"state must be one of {', '.join(FILTER_STATES)}")
        label = parse_label_filter(f["label"]) if f["label"] else None
        prefix = parse_prefix(f["q"]) if f["q"] else ""
        after = None
        if after_text:
            iccid, sep, device = after_text.partition("/")
            if not sep:
                raise BadRequest("after must be ICCID/DEVICEID")
            after = (parse_iccid(iccid, force=True), parse_device(device))
    except BadRequest as exc:
        return ctx.render("devices.html", status=400, error=exc.detail, page=None, filters=f,
                          states=FILTER_STATES, after="")
    result = ctx.read(lambda store: list_devices(
        store, state=f["state"] or None, label=label, prefix=prefix, after=after))
    return ctx.render("devices.html", page=result, filters=f, states=FILTER_STATES,
                      after=after_text)


@page("GET", "/devices/{iccid}/{device}")
def device(ctx: Ctx) -> Response:
    iccid = parse_iccid(ctx.path("iccid"), force=True)
    device_id = parse_device(ctx.path("device"))
    data = ctx.read(lambda store: device_detail(store, iccid, device_id))
    return ctx.render("device.html", **data)


# ---------------------------------------------------------------------------- fleets


def _fleets(ctx: Ctx, *, status: int = 200, error: str | None = None,
            form: dict[str, str] | None = None) -> Response:
    configs = ctx.read(list_label_configs)
    return ctx.render("fleets.html", status=status, error=error, configs=configs,
                      form=form or {})


@page("GET", "/fleets")
def fleets(ctx: Ctx) -> Response:
    return _fleets(ctx)


def _fleet(ctx: Ctx, label: str, *, status: int = 200, error: str | None = None,
           text: str | None = None, priority: str | None = None,
           comment: str = "") -> Response:
    data = ctx.read(lambda store: label_config_editor(store, label))
    current = data["config"]
    return ctx.render(
        "fleet.html", status=status, error=error, label=label, current=current,
        history=data["history"], rollouts=data["rollouts"], comment=comment,
        text=text if text is not None else (current["body"] or "" if current else ""),
        priority=priority if priority is not None else (
            str(current["priority"]) if current else ""))


@page("GET", "/fleets/{label}")
def fleet(ctx: Ctx) -> Response:
    return _fleet(ctx, ctx.path("label"))


@page("POST", "/fleets", scope="write")
def fleet_save(ctx: Ctx) -> Response:
    """Create or change a label configuration (a new version at once; for a staged change,
    the rollouts page). A refusal draws the form again with the operator's text."""
    label = ctx.form.get("label", "").strip()
    text = ctx.form.get("body", "").replace("\r\n", "\n")
    priority_text = ctx.form.get("priority", "").strip()
    comment = ctx.form.get("comment", "")
    try:
        priority = parse_priority(priority_text)
        ctx.write(lambda store: save_label_config(
            store, ctx.actor, label, text, priority=priority,
            require_json=_require_json(ctx), comment=comment,
            service_json=ctx.console.state.settings.require_json))
    except ServiceError as exc:
        if ctx.form.get("from") == "fleet":
            return _fleet(ctx, label, status=exc.status, error=exc.detail, text=text,
                          priority=priority_text, comment=comment)
        return _fleets(ctx, status=exc.status, error=exc.detail, form={
            "label": label, "body": text, "priority": priority_text, "comment": comment})
    return redirect(f"/console/fleets/{label}", ok="fleet_saved")


@page("POST", "/fleets/{label}/delete", scope="write")
def fleet_delete(ctx: Ctx) -> Response:
    label = ctx.path("label")
    try:
        ctx.write(lambda store: delete_label_config(store, ctx.actor, label))
    except ServiceError as exc:
        return _fleet(ctx, label, status=exc.status, error=exc.detail)
    return redirect("/console/fleets", ok="fleet_deleted")


# ---------------------------------------------------------------------------- rollouts


def _rollouts(ctx: Ctx, *, status: int = 200, error: str | None = None,
              form: dict[str, str] | None = None) -> Response:
    rows = ctx.read(list_rollouts)
    labels = [c["label"] for c in ctx.read(list_label_configs)]
    return ctx.render("rollouts.html", status=status, error=error, rollouts=rows,
                      labels=labels, form=form or {"stages": "10, 50, 100",
                                                   "max_failures": "0",
                                                   "label": ctx.query("label")})


@page("GET", "/rollouts")
def rollouts(ctx: Ctx) -> Response:
    return _rollouts(ctx)


@page("POST", "/rollouts", scope="write")
def rollout_start(ctx: Ctx) -> Response:
    """Start a staged rollout of a new body of a label configuration."""
    form = {n: ctx.form.get(n, "") for n in ("label", "body", "stages", "devices",
                                             "max_failures", "priority", "comment")}
    form["body"] = form["body"].replace("\r\n", "\n")
    try:
        stages = parse_stages(form["stages"])
        listed = parse_device_list(form["devices"])
        max_failures = parse_priority(form["max_failures"].strip() or "0")
        if max_failures > 100000:
            raise BadRequest("max_failures must be a whole number 0..100000")
        priority = parse_priority(form["priority"].strip()) if form["priority"].strip() \
            else None
        started = ctx.write(lambda store: start_rollout(
            store, ctx.actor, form["label"].strip(), form["body"], stages=stages,
            devices=listed, max_failures=max_failures, priority=priority,
            require_json=_require_json(ctx), comment=form["comment"],
            service_json=ctx.console.state.settings.require_json))
    except ServiceError as exc:
        return _rollouts(ctx, status=exc.status, error=exc.detail, form=form)
    return redirect(f"/console/rollouts/{started['id']}", ok="rollout_started")


def _rollout(ctx: Ctx, rollout_id: int, *, status: int = 200, error: str | None = None,
             confirm: str | None = None) -> Response:
    data = ctx.read(lambda store: rollout_status(store, rollout_id))
    return ctx.render("rollout.html", status=status, error=error, r=data, confirm=confirm,
                      confirm_text=ACTION_TEXT.get(confirm or ""))


@page("GET", "/rollouts/{rollout_id}")
def rollout(ctx: Ctx) -> Response:
    return _rollout(ctx, _rollout_id(ctx.path("rollout_id")))


@page("POST", "/rollouts/{rollout_id}/{action}", scope="write")
def rollout_change(ctx: Ctx) -> Response:
    """Pause, resume or abort. Without ``confirm=1`` nothing changes: the page asks first,
    saying what the action does (an abort rolls every device back)."""
    rollout_id = _rollout_id(ctx.path("rollout_id"))
    action = ctx.path("action")
    if action not in ROLLOUT_ACTIONS:
        raise BadRequest("action must be pause, resume or abort")
    if ctx.form.get("confirm") != "1":
        return _rollout(ctx, rollout_id, confirm=action)
    try:
        ctx.write(lambda store: change_rollout(store, ctx.actor, rollout_id, action))
    except ServiceError as exc:
        return _rollout(ctx, rollout_id, status=exc.status, error=exc.detail)
    return redirect(f"/console/rollouts/{rollout_id}", ok=f"rollout_{action}")
