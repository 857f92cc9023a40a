"""The console's pages, one handler each (registered with ``_pages.page``; paths are under
``/console``). Scope ``read`` pages show; ``write`` ones change, through ``_domain``."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.responses import Response

from .._errors import BadRequest, Conflict, ServiceError
from .._schemas import parse_comment, parse_iccid
from ._domain import (
    audit_page,
    body_diff,
    cancel_rotation,
    config_editor,
    delete_config,
    import_config_file,
    import_key_file,
    list_rotations,
    list_sims,
    parse_device,
    parse_label_filter,
    parse_prefix,
    retry_rotation,
    rollback_config,
    save_config,
    set_sim_state,
    sim_detail,
)
from ._pages import Ctx, page, redirect

__all__: list[str] = []


def _iccid(ctx: Ctx) -> str:
    return parse_iccid(ctx.path("iccid"), force=True)


def _device(ctx: Ctx) -> str:
    return parse_device(ctx.path("device"))


def _int(text: str, name: str, lo: int = 0, hi: int = 2**31 - 1) -> int:
    if not text.isascii() or not text.isdigit() or not lo <= int(text) <= hi:
        raise BadRequest(f"{name} must be a whole number {lo}..{hi}")
    return int(text)


def _when(text: str, name: str) -> int | None:
    """A ``datetime-local`` field, read as UTC, in epoch ms."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date and time (YYYY-MM-DDTHH:MM)") from None
    return int(at.replace(tzinfo=at.tzinfo or UTC).timestamp() * 1000)


# ---------------------------------------------------------------------------- sign-in


@page("GET", "/", scope=None)
def home(ctx: Ctx) -> Response:
    return redirect("/console/sims")


@page("GET", "/login", scope=None)
def login_page(ctx: Ctx) -> Response:
    return ctx.console.login_form(ctx)


@page("POST", "/login", scope=None)
def login(ctx: Ctx) -> Response:
    return ctx.console.login(ctx)


@page("POST", "/logout")
def logout(ctx: Ctx) -> Response:
    return ctx.console.logout(ctx)


# ---------------------------------------------------------------------------- SIMs


@page("GET", "/sims")
def sims(ctx: Ctx) -> Response:
    q, label, state, after = (ctx.query(n) for n in ("q", "label", "state", "after"))
    filters = {"q": q, "label": label, "state": state}
    try:
        prefix = parse_prefix(q) if q else ""
        label_kv = parse_label_filter(label) if label else None
        if state not in ("", "active", "suspended"):
            raise BadRequest("state must be active or suspended")
        if after and not (after.isdigit() and len(after) <= 20):
            raise BadRequest("after must be an ICCID")
    except BadRequest as exc:
        return ctx.render("sims.html", status=400, error=exc.detail, page=None,
                          filters=filters)
    result = ctx.read(lambda store: list_sims(
        store, prefix=prefix, label=label_kv, state=state or None, after=after or None))
    return ctx.render("sims.html", page=result, filters=filters, after=after)


@page("GET", "/sims/{iccid}")
def sim(ctx: Ctx) -> Response:
    iccid = _iccid(ctx)
    data = ctx.read(lambda store: sim_detail(store, iccid))
    return ctx.render("sim.html", **data)


@page("POST", "/sims/{iccid}/state", scope="write")
def sim_state(ctx: Ctx) -> Response:
    iccid = _iccid(ctx)
    state = ctx.form.get("state", "")
    ctx.write(lambda store: set_sim_state(store, ctx.actor, iccid, state))
    return redirect(f"/console/sims/{iccid}", ok=state)


@page("GET", "/sims/{iccid}/configs")
def open_config(ctx: Ctx) -> Response:
    """The SIM page's "configuration for device" form: to that device's editor."""
    iccid = _iccid(ctx)
    device = parse_device(ctx.query("device"))
    return redirect(f"/console/sims/{iccid}/configs/{device}")


# ---------------------------------------------------------------------------- configurations


def _editor(ctx: Ctx, iccid: str, device: str, *, status: int = 200, text: str | None = None,
            if_version: int | None = None, error: str | None = None,
            diff: list[str] | None = None, diff_title: str = "",
            comment: str = "") -> Response:
    data = ctx.read(lambda store: config_editor(store, iccid, device))
    current = data["current"]
    return ctx.render(
        "config.html", status=status, iccid=iccid, device=device, current=current,
        history=data["history"], text=text if text is not None else (
            current["body"] if current else ""),
        if_version=if_version if if_version is not None else data["version"],
        error=error, diff=diff, diff_title=diff_title, comment=comment)


@page("GET", "/sims/{iccid}/configs/{device}")
def config(ctx: Ctx) -> Response:
    iccid, device = _iccid(ctx), _device(ctx)
    against = ctx.query("diff")
    if not against:
        return _editor(ctx, iccid, device)
    version = _int(against, "diff", 1)
    data = ctx.read(lambda store: config_editor(store, iccid, device))
    old = next((v for v in data["history"] if v["version"] == version), None)
    if old is None:
        raise BadRequest(f"no version {version} in the recent history")
    cur = data["current"]
    diff = body_diff(old["body"], cur["body"] if cur else None, f"version {version}",
                             f"current (version {data['version']})")
    return _editor(ctx, iccid, device, diff=diff,
                   diff_title=f"version {version} -> current")


@page("POST", "/sims/{iccid}/configs/{device}", scope="write")
def config_save(ctx: Ctx) -> Response:
    """Save (or, with ``action=diff``, only compare) the edited body. The form carries the
    version the operator started from: a save on top of someone else's is refused (409) and
    the page shows what changed meanwhile, keeping the operator's text."""
    iccid, device = _iccid(ctx), _device(ctx)
    text = ctx.form.get("body", "").replace("\r\n", "\n")
    if_version = _int(ctx.form.get("if_version", ""), "if_version")
    comment = ctx.form.get("comment", "")
    if ctx.form.get("action") == "diff":
        cur = ctx.read(lambda store: config_editor(store, iccid, device))["current"]
        diff = body_diff(cur["body"] if cur else None, text, "current", "edited")
        return _editor(ctx, iccid, device, text=text, if_version=if_version, diff=diff,
                       diff_title="current -> edited", comment=comment)
    require_json = True if ctx.form.get("require_json") else None
    if require_json is None and ctx.console.state.settings.require_json:
        require_json = True
    try:
        ctx.write(lambda store: save_config(
            store, ctx.actor, iccid, device, text, if_version=if_version,
            comment=parse_comment(comment), require_json=require_json))
    except Conflict as exc:
        if exc.code != "version_conflict":
            return _editor(ctx, iccid, device, status=409, text=text, if_version=if_version,
                           error=exc.detail, comment=comment)
        cur = ctx.read(lambda store: config_editor(store, iccid, device))
        theirs = cur["current"]["body"] if cur["current"] else None
        return _editor(
            ctx, iccid, device, status=409, text=text, if_version=cur["version"],
            comment=comment,
            error=(f"Version conflict: someone saved version {cur['version']} while you were "
                   f"editing version {if_version}. Your text is kept below; the diff shows "
                   "their version against yours. Save again to replace it."),
            diff=body_diff(theirs, text, f"version {cur['version']} (current)",
                                   "yours"),
            diff_title="current -> yours")
    except ServiceError as exc:
        return _editor(ctx, iccid, device, status=exc.status, text=text,
                       if_version=if_version, error=exc.detail, comment=comment)
    return redirect(f"/console/sims/{iccid}/configs/{device}", ok="saved")


@page("POST", "/sims/{iccid}/configs/{device}/delete", scope="write")
def config_delete(ctx: Ctx) -> Response:
    iccid, device = _iccid(ctx), _device(ctx)
    try:
        ctx.write(lambda store: delete_config(store, ctx.actor, iccid, device))
    except ServiceError as exc:
        return _editor(ctx, iccid, device, status=exc.status, error=exc.detail)
    return redirect(f"/console/sims/{iccid}/configs/{device}", ok="deleted")


@page("POST", "/sims/{iccid}/configs/{device}/rollback", scope="write")
def config_rollback(ctx: Ctx) -> Response:
    iccid, device = _iccid(ctx), _device(ctx)
    version = _int(ctx.form.get("version", ""), "version", 1)
    try:
        ctx.write(lambda store: rollback_config(store, ctx.actor, iccid, device,
                                                        version))
    except ServiceError as exc:
        return _editor(ctx, iccid, device, status=exc.status, error=exc.detail)
    return redirect(f"/console/sims/{iccid}/configs/{device}", ok="rolled_back")


# ---------------------------------------------------------------------------- import


@page("GET", "/import")
def import_page(ctx: Ctx) -> Response:
    return ctx.render("import.html", report=None, kind=None)


@page("POST", "/import", scope="write")
def import_upload(ctx: Ctx) -> Response:
    """A key file (``kind=keys``) or a configurations file (``kind=configs``). A file with
    bad rows writes nothing: every row is checked before the import."""
    kind = ctx.form.get("kind", "keys")
    if kind not in ("keys", "configs"):
        raise BadRequest("kind must be keys or configs")
    raw = ctx.files.get("file")
    if not raw:
        return ctx.render("import.html", status=400, report=None, kind=kind,
                          error="choose a CSV file to upload")
    force = bool(ctx.form.get("force"))
    try:
        report = ctx.write(
            lambda store: import_key_file(store, ctx.actor, raw, force=force) if kind == "keys"
            else import_config_file(store, ctx.actor, raw))
    except ServiceError as exc:  # what only the database knows: a clashing key tag
        return ctx.render("import.html", status=exc.status, report=None, kind=kind,
                          error=exc.detail)
    return ctx.render("import.html", status=400 if report.errors else 200, report=report,
                      kind=kind)


# ---------------------------------------------------------------------------- rotations


@page("GET", "/rotations")
def rotations(ctx: Ctx) -> Response:
    state = ctx.query("state")
    if state not in ("", "pending", "delivered", "confirmed", "failed", "retired",
                     "cancelled"):
        raise BadRequest("unknown rotation state")
    overdue = ctx.query("overdue") == "1"
    rows = ctx.read(lambda store: list_rotations(store, state=state or None,
                                                          overdue=overdue))
    return ctx.render("rotations.html", rotations=rows, state=state, overdue=overdue)


@page("POST", "/rotations/{iccid}/retry", scope="write")
def rotation_retry(ctx: Ctx) -> Response:
    iccid = _iccid(ctx)
    ctx.write(lambda store: retry_rotation(store, ctx.actor, iccid))
    return redirect("/console/rotations", ok="retried")


@page("POST", "/rotations/{iccid}/cancel", scope="write")
def rotation_cancel(ctx: Ctx) -> Response:
    iccid = _iccid(ctx)
    ctx.write(lambda store: cancel_rotation(store, ctx.actor, iccid))
    return redirect("/console/rotations", ok="cancelled")


# ---------------------------------------------------------------------------- audit


@page("GET", "/audit")
def audit(ctx: Ctx) -> Response:
    f = {n: ctx.query(n) for n in ("iccid", "actor", "action", "since", "until", "before")}
    try:
        iccid = parse_iccid(f["iccid"], force=True) if f["iccid"] else None
        before = _int(f["before"], "before", 1) if f["before"] else None
        since, until = _when(f["since"], "since"), _when(f["until"], "until")
    except BadRequest as exc:
        return ctx.render("audit.html", status=400, error=exc.detail, events=[], filters=f,
                          next_before=None)
    events, next_before = ctx.read(lambda store: audit_page(
        store, iccid=iccid, actor=f["actor"] or None, action=f["action"] or None,
        since_ms=since, until_ms=until, before=before))
    return ctx.render("audit.html", events=events, filters=f, next_before=next_before)
