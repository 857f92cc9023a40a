"""What the console does, in terms of the service's own domain code (issue 18).

Every change goes through the same ``Store`` methods and rotation functions the API routes
call, with the signed-in operator as the audit actor: validation, sealing, optimistic
locking, feed notes and audit records are theirs. Only the console's read-only list queries
(SIM search, audit filters, recent deliveries) are written here, on the indexes of migration
``0004_console_users``. This is the one module that knows the Store's method names.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from .._audit import Actor, audit_view
from .._devices import Devices
from .._errors import BadRequest, NotFound, ServiceError
from .._fleet import PRIORITY_MAX, LabelConfigs, parse_label
from .._fleet_models import DeviceState
from .._models import AuditEvent, ConfigSlot, ConfigVersion, Sim, SimKey
from .._rollouts import Rollouts
from .._rotation import cancel_rotation as _cancel_rotation
from .._rotation import get_rotation as _get_rotation
from .._rotation import list_rotations as _list_rotations
from .._rotation import retry_rotation as _retry_rotation
from .._schemas import (
    DEFAULT_DEVICE,
    parse_body,
    parse_comment,
    parse_device_id,
    parse_iccid,
    parse_key_hex,
    parse_tag,
)
from .._sims import key_view
from .._stages import STAGES_MAX
from .._store import Store
from ._models import SimLabel

__all__ = [
    "DevicePage",
    "ImportReport",
    "SimPage",
    "audit_page",
    "body_diff",
    "import_config_file",
    "import_key_file",
    "list_sims",
]

PAGE = 50
_KEY_FILE_COLUMNS = ("iccid", "psk", "tag", "kic", "kid")
_CONFIG_FILE_COLUMNS = ("iccid", "device_id", "body", "require_json", "comment")


@dataclass
class SimPage:
    sims: list[dict[str, Any]]
    next_after: str | None  # the last ICCID shown, when there may be more


def parse_prefix(text: str) -> str:
    digits = text.replace(" ", "").replace("-", "")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 20:
        raise BadRequest("ICCID prefix must be up to 20 digits")
    return digits


def parse_label_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise BadRequest("label filter must be key=value")
    return key.strip(), value.strip()


def list_sims(store: Store, *, prefix: str = "", label: tuple[str, str] | None = None,
              state: str | None = None, after: str | None = None,
              limit: int = PAGE) -> SimPage:
    """One page of SIMs in ICCID order after ``after`` (keyset paging: each page is an index
    range scan, whatever its position). ``label`` reads ``sim_label``'s (key, value, iccid)
    index, with ``state`` its (key, value, state, iccid) one; ``state`` alone the sim
    (state, iccid) one; an ICCID prefix is a range of the unique index."""
    if label is not None:
        q = (select(Sim).join(SimLabel, SimLabel.sim_id == Sim.id)
             .where(SimLabel.key == label[0], SimLabel.value == label[1])
             .order_by(SimLabel.iccid))
        col = SimLabel.iccid
    else:
        q = select(Sim).order_by(Sim.iccid)
        col = Sim.iccid
    if prefix:
        q = q.where(col >= prefix, col < prefix + ":")  # ':' sorts right after '9'
    if state:
        q = q.where((SimLabel.state if label is not None else Sim.state) == state)
    if after:
        q = q.where(col > after)
    sims = list(store.s.scalars(q.limit(limit + 1)))
    more = len(sims) > limit
    sims = sims[:limit]
    keys: dict[int, list[SimKey]] = {}
    if sims:
        for k in store.s.scalars(select(SimKey).where(SimKey.sim_id.in_([s.id for s in sims]))
                                 .order_by(SimKey.kind, SimKey.id)):
            keys.setdefault(k.sim_id, []).append(k)
    rows = [{"iccid": s.iccid, "state": s.state, "labels": json.loads(s.labels_json),
             "keys": [key_view(k) for k in keys.get(s.id, [])],
             "last_device_id": s.last_device_id, "updated_ms": s.updated_ms} for s in sims]
    return SimPage(rows, sims[-1].iccid if more and sims else None)


def sim_detail(store: Store, iccid: str) -> dict[str, Any]:
    """The SIM page: the SIM with its key list (never key material), its configurations,
    its rotation, recent deliveries and telemetry."""
    sim = store.sims.get(iccid)
    try:
        rotation: dict[str, Any] | None = _get_rotation(store, iccid)
    except NotFound:
        rotation = None
    deliveries = [audit_view(e) for e in store.s.scalars(
        select(AuditEvent).where(AuditEvent.iccid == iccid,
                                 AuditEvent.action.in_(("config.deliver", "config.miss",
                                                        "device.refused", "sim.moved")))
        .order_by(AuditEvent.id.desc()).limit(20))]
    return {"sim": sim, "configs": store.configs.list_current(iccid), "rotation": rotation,
            "deliveries": deliveries, "telemetry": store.delivery.list_telemetry(iccid, 20),
            "devices": sim_devices(store, iccid)}


def set_sim_state(store: Store, actor: Actor, iccid: str, state: str) -> None:
    if state not in ("active", "suspended"):
        raise BadRequest("state must be active or suspended")
    store.sims.update(actor, iccid, state=state)


def config_editor(store: Store, iccid: str, device: str) -> dict[str, Any]:
    """The current configuration (None when there is none yet) and its history."""
    store.sims.get(iccid)  # NotFound for an unknown SIM
    try:
        current: dict[str, Any] | None = store.configs.get(iccid, device)
    except NotFound:
        current = None
    try:
        history = store.configs.history(iccid, device, 50)
    except NotFound:
        history = []
    version = history[0]["version"] if history else 0
    return {"current": current, "history": history, "version": version}


def save_config(store: Store, actor: Actor, iccid: str, device: str, body: str, *,
                if_version: int, comment: str, require_json: bool | None) -> dict[str, Any]:
    return store.configs.set(actor, iccid, device, body, if_version=if_version,
                              comment=comment, require_json=require_json)


def delete_config(store: Store, actor: Actor, iccid: str, device: str) -> dict[str, Any]:
    """A deletion version (the history stays): the device falls back to the SIM's default."""
    return store.configs.set(actor, iccid, device, None)


def rollback_config(store: Store, actor: Actor, iccid: str, device: str,
                    version: int) -> dict[str, Any]:
    return store.configs.rollback(actor, iccid, device, version)


def body_diff(old: str | None, new: str | None, old_name: str, new_name: str) -> list[str]:
    """Unified diff lines of two bodies. A one-line JSON body is compared pretty-printed
    (one member per line), so the diff shows which member changed."""

    def lines(text: str | None) -> list[str]:
        if text is None:
            return []
        try:
            return json.dumps(json.loads(text), indent=1, sort_keys=False).splitlines()
        except ValueError:
            return text.splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), old_name, new_name, lineterm=""))


# ---------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    errors: list[tuple[int, str]] = field(default_factory=list)  # (file line, message)
    rows: int = 0
    already: list[str] = field(default_factory=list)  # key file: ICCIDs registered before
    result: dict[str, int] | None = None


def _csv_rows(raw: bytes, columns: tuple[str, ...], required: tuple[str, ...],
              report: ImportReport) -> list[tuple[int, dict[str, str]]]:
    """``(line, {column: cell})`` of each non-empty row; problems go to ``report.errors``
    with their line (a row with the wrong number of cells is one)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.errors.append((0, "the file is not UTF-8 text"))
        return []
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader, [])]
    except csv.Error as exc:
        report.errors.append((1, f"malformed CSV: {exc}"))
        return []
    missing = [c for c in required if c not in header]
    unknown = [h for h in header if h not in columns]
    if missing or unknown:
        report.errors.append((1, f"the header needs the columns {', '.join(required)} and "
                                 f"may have {', '.join(c for c in columns if c not in required)}"
                                 + (f"; unknown: {', '.join(unknown)}" if unknown else "")))
        return []
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                report.errors.append((reader.line_num, f"{len(cells)} columns, the header "
                                                       f"has {len(header)}"))
                continue
            rows.append((reader.line_num, dict(zip(header, cells, strict=True))))
    except csv.Error as exc:
        report.errors.append((reader.line_num, f"malformed CSV: {exc}"))
    return rows


def import_key_file(store: Store, actor: Actor, raw: bytes, *, force: bool) -> ImportReport:
    """The vendor key file (``iccid,psk[,tag,kic,kid]``), every row checked first with the
    service's own rules: a file with bad rows imports nothing and each one is reported with
    its line. A good file goes to ``Store.imports.sims`` (one transaction; a key the SIM
    already holds is counted unchanged, so uploading the same file again changes nothing and
    says what was already there)."""
    report = ImportReport()
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells in _csv_rows(raw, _KEY_FILE_COLUMNS, ("iccid", "psk"), report):
        row = {k: v.strip() for k, v in cells.items()}
        try:
            iccid = parse_iccid(row["iccid"], force=force)
            parse_key_hex(row["psk"], "psk")
            if row.get("tag"):
                parse_tag(row["tag"])
            for kind in ("kic", "kid"):
                if row.get(kind):
                    parse_key_hex(row[kind], kind)
        except ServiceError as exc:
            report.errors.append((line, exc.detail))
            continue
        dup = (iccid, row.get("tag") or "")
        if dup in seen:
            report.errors.append((line, f"ICCID {iccid} already on line {seen[dup]}"))
            continue
        seen[dup] = line
        rows.append(row)
    report.errors.sort()
    report.rows = len(rows)
    if not report.errors and not rows:
        report.errors.append((0, "the file holds no rows"))
    if report.errors:
        return report
    iccids = sorted({parse_iccid(r["iccid"], force=force) for r in rows})
    for start in range(0, len(iccids), 500):
        report.already += list(store.s.scalars(
            select(Sim.iccid).where(Sim.iccid.in_(iccids[start:start + 500]))
            .order_by(Sim.iccid)))
    report.result = store.imports.sims(actor, rows, force=force)
    return report


def import_config_file(store: Store, actor: Actor, raw: bytes) -> ImportReport:
    """Configurations per ICCID and DeviceID (``iccid,device_id,body[,require_json,comment]``;
    an empty device_id is the SIM's default), every row checked first (ICCID, device id, the
    body's 254 bytes and JSON when asked, the SIM registered, a pair listed twice): a file
    with bad rows imports nothing and each one is reported with its line. A row whose body
    is already the current one is left as it is and counted (a re-upload changes nothing);
    the others go to ``Store.imports.configs`` (one transaction, a new version each)."""
    report = ImportReport()
    rows: list[tuple[int, dict[str, Any]]] = []
    seen: dict[tuple[str, str], int] = {}
    for line, cells in _csv_rows(raw, _CONFIG_FILE_COLUMNS, ("iccid", "body"), report):
        try:
            iccid = parse_iccid(cells["iccid"].strip(), force=True)
            device = parse_device(cells.get("device_id", ""))
            flag = cells.get("require_json", "").strip().lower()
            if flag not in ("", "true", "false", "1", "0", "yes", "no"):
                raise BadRequest("require_json must be true or false")
            require_json = flag in ("true", "1", "yes") if flag else None
            body = cells["body"]
            parse_body(body, require_json=bool(require_json))
            comment = parse_comment(cells.get("comment") or None)
        except ServiceError as exc:
            report.errors.append((line, exc.detail))
            continue
        if (iccid, device) in seen:
            report.errors.append((line, f"ICCID {iccid} device {device} already on line "
                                        f"{seen[(iccid, device)]}"))
            continue
        seen[(iccid, device)] = line
        row: dict[str, Any] = {"iccid": iccid, "device_id": device, "body": body}
        if require_json is not None:
            row["require_json"] = require_json
        if comment:
            row["comment"] = comment
        rows.append((line, row))
    current: dict[tuple[str, str], bytes | None] = {}
    known: set[str] = set()
    iccids = sorted({r["iccid"] for _, r in rows})
    for start in range(0, len(iccids), 500):
        chunk = iccids[start:start + 500]
        known.update(store.s.scalars(select(Sim.iccid).where(Sim.iccid.in_(chunk))))
        for iccid, device, body in store.s.execute(
                select(Sim.iccid, ConfigSlot.device_key, ConfigVersion.body)
                .join(ConfigSlot, ConfigSlot.sim_id == Sim.id)
                .join(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
                      & (ConfigVersion.version == ConfigSlot.current_version))
                .where(Sim.iccid.in_(chunk))):
            current[(iccid, device)] = body
    for line, row in rows:
        if row["iccid"] not in known:
            report.errors.append((line, f"SIM {row['iccid']} is not registered"))
    report.errors.sort()
    report.rows = len(rows)
    if not report.errors and not rows:
        report.errors.append((0, "the file holds no rows"))
    if report.errors:
        return report
    changed = [r for _, r in rows
               if current.get((r["iccid"], r["device_id"])) != r["body"].encode("utf-8")
               or "require_json" in r]
    report.result = {"imported": 0, "unchanged": len(rows) - len(changed)}
    if changed:
        report.result["imported"] = store.imports.configs(actor, changed)["imported"]
    return report


# ---------------------------------------------------------------------------- rotations


def list_rotations(store: Store, *, state: str | None, overdue: bool,
                   limit: int = 200) -> list[dict[str, Any]]:
    return _list_rotations(store, batch=None, state=state, overdue=overdue,
                                    after=0, limit=limit)


def retry_rotation(store: Store, actor: Actor, iccid: str) -> dict[str, Any]:
    return _retry_rotation(store, actor, iccid)


def cancel_rotation(store: Store, actor: Actor, iccid: str) -> dict[str, Any]:
    return _cancel_rotation(store, actor, iccid, "cancelled in the console")


# ---------------------------------------------------------------------------- audit


def audit_page(store: Store, *, iccid: str | None, actor: str | None, action: str | None,
               since_ms: int | None, until_ms: int | None, before: int | None,
               limit: int = PAGE) -> tuple[list[dict[str, Any]], int | None]:
    """Audit events newest first, ``before`` an id (keyset); returns (events, next before)."""
    q = select(AuditEvent).order_by(AuditEvent.id.desc())
    if iccid:
        q = q.where(AuditEvent.iccid == iccid)
    if actor:
        q = q.where(AuditEvent.actor == actor)
    if action:
        if action.endswith("."):
            # a family ("config."): walk the log newest first and stop at a page of matches;
            # a range on the action index would sort every match (millions of deliveries)
            q = q.where(func.substr(AuditEvent.action, 1, len(action)) == action)
        else:
            q = q.where(AuditEvent.action == action)
    # A time window becomes a range of ids (the log's commit order), each end one seek on
    # the at_ms index: the page then walks ids newest first like every other, never sorting
    # a window's matches. (An event whose clock reading lags one committed just before it,
    # by a millisecond, may fall on the other side of the edge.)
    if since_ms is not None:
        first = store.s.scalar(select(AuditEvent.id).where(AuditEvent.at_ms >= since_ms)
                               .order_by(AuditEvent.at_ms, AuditEvent.id).limit(1))
        if first is None:
            return [], None
        q = q.where(AuditEvent.id >= first)
    if until_ms is not None:
        end = store.s.scalar(select(AuditEvent.id).where(AuditEvent.at_ms >= until_ms)
                             .order_by(AuditEvent.at_ms, AuditEvent.id).limit(1))
        if end is not None:
            q = q.where(AuditEvent.id < end)
    if before is not None:
        q = q.where(AuditEvent.id < before)
    events = [audit_view(e) for e in store.s.scalars(q.limit(limit + 1))]
    more = len(events) > limit
    events = events[:limit]
    return events, events[-1]["id"] if more and events else None


def parse_device(text: str) -> str:
    return parse_device_id(text.strip() or DEFAULT_DEVICE, allow_default=True)


# ---------------------------------------------------------------------------- devices, fleets
# Device state, label configurations and rollouts (issue 17) through the same classes the
# ``/v1/devices``, ``/v1/label-configs`` and ``/v1/rollouts`` routes build (``_fleet_routes``),
# with the store's audit recorder: the same checks, the same ``fleet.*``/``rollout.*`` records.


def _fleet_ops(store: Store) -> tuple[Devices, LabelConfigs, Rollouts]:
    record = store.audit.record
    return (Devices(store.s, store.now_ms, record), LabelConfigs(store.s, store.now_ms, record),
            Rollouts(store.s, store.now_ms, record))


@dataclass
class DevicePage:
    devices: list[dict[str, Any]]
    next_after: str | None  # ICCID/DEVICEID of the last device shown, when there may be more


def list_devices(store: Store, *, state: str | None, label: tuple[str, str] | None,
                 prefix: str = "", after: tuple[str, str] | None = None,
                 limit: int = PAGE) -> DevicePage:
    """One page of devices in (ICCID, DeviceID) order after ``after``, as ``GET /v1/devices``
    lists them. An ICCID prefix starts the walk at the prefix (every ICCID that starts with
    it sorts after it) and ends it at the first one that does not."""
    devices, _, _ = _fleet_ops(store)
    if prefix and (after is None or after[0] < prefix):
        after = (prefix, "")  # "" sorts before every DeviceID of the prefix itself
    rows = devices.list(state=state, label=label, after=after, limit=limit + 1)
    if prefix:
        rows = [d for d in rows if d["iccid"].startswith(prefix)]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more and rows else None
    return DevicePage(rows, f"{last['iccid']}/{last['device_id']}" if last else None)


def device_detail(store: Store, iccid: str, device_id: str) -> dict[str, Any]:
    """A device's state (``GET /v1/devices/{iccid}/{device}``), where its desired body comes
    from (a label's priority), and its reports and deliveries as the audit log keeps them."""
    devices, configs, _ = _fleet_ops(store)
    device = devices.show(iccid, device_id)
    source = (device["desired"] or {}).get("source")
    label_config = None
    if source and source.startswith("label:"):
        key, _, value = source[len("label:"):].partition("=")
        found = configs.find(key, value)
        if found is not None:
            label_config = {"label": f"{key}={value}", "priority": found.priority}
    history = [audit_view(e) for e in store.s.scalars(
        select(AuditEvent).where(AuditEvent.iccid == iccid, AuditEvent.device_id == device_id,
                                 AuditEvent.action.in_(("device.report", "config.deliver",
                                                        "config.miss")))
        .order_by(AuditEvent.id.desc()).limit(PAGE))]
    return {"device": device, "label_config": label_config, "history": history}


def sim_devices(store: Store, iccid: str, limit: int = 20) -> list[dict[str, Any]]:
    """The SIM's devices the service has seen (their state), for its page."""
    devices, _, _ = _fleet_ops(store)
    ids = store.s.scalars(select(DeviceState.device_id).join(Sim, Sim.id == DeviceState.sim_id)
                          .where(Sim.iccid == iccid).order_by(DeviceState.device_id)
                          .limit(limit))
    return [devices.show(iccid, device_id) for device_id in ids]


def list_label_configs(store: Store) -> list[dict[str, Any]]:
    """Label configurations, highest priority first (``GET /v1/label-configs``)."""
    _, configs, _ = _fleet_ops(store)
    return configs.list()


def label_config_editor(store: Store, label: str) -> dict[str, Any]:
    """One label configuration (None while it is new) with its recent versions."""
    key, value = parse_label(label)
    _, configs, rollouts = _fleet_ops(store)
    if configs.find(key, value) is None:
        return {"config": None, "history": [], "rollouts": []}
    return {"config": configs.get(key, value), "history": configs.history(key, value, PAGE),
            "rollouts": rollouts.list((key, value), 20)}


def parse_priority(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > PRIORITY_MAX:
        raise BadRequest(f"priority must be a whole number 0..{PRIORITY_MAX}")
    return int(text)


def save_label_config(store: Store, actor: Actor, label: str, body: str, *, priority: int,
                      require_json: bool | None, comment: str,
                      service_json: bool) -> dict[str, Any]:
    key, value = parse_label(label)
    _, configs, _ = _fleet_ops(store)
    raw = configs.checked_body((key, value), body, require_json=require_json,
                               service_json=service_json)
    return configs.set(actor, key, value, raw, priority=priority, require_json=require_json,
                       comment=parse_comment(comment or None))


def delete_label_config(store: Store, actor: Actor, label: str) -> None:
    _, configs, _ = _fleet_ops(store)
    configs.delete(actor, *parse_label(label))


def list_rollouts(store: Store, limit: int = PAGE) -> list[dict[str, Any]]:
    """Rollouts newest first, each open one with its counts (the list's own view has none)."""
    _, _, rollouts = _fleet_ops(store)
    rows = rollouts.list(None, limit)
    return [rollouts.status(r["id"]) if r["state"] in ("running", "paused", "stopped") else r
            for r in rows]


def rollout_status(store: Store, rollout_id: int) -> dict[str, Any]:
    _, _, rollouts = _fleet_ops(store)
    return rollouts.status(rollout_id)


def parse_stages(text: str) -> list[int]:
    """``10, 50, 100`` (cumulative percentages; empty: 10, 50, 100), as the API reads its
    ``stages`` list: sorted, duplicates dropped, 100 added last."""
    parts = [p for p in text.replace(",", " ").replace("%", " ").split() if p]
    if not parts:
        return [10, 50, 100]
    if len(parts) > STAGES_MAX or any(not p.isascii() or not p.isdigit()
                                      or not 1 <= int(p) <= 100 for p in parts):
        raise BadRequest(f"stages must be 1-{STAGES_MAX} whole percentages 1..100")
    return sorted({int(p) for p in parts} | {100})


def parse_device_list(text: str) -> list[str]:
    """One ICCID (every device of the SIM) or ICCID/DEVICEID a line (or space-separated)."""
    entries = text.split()
    if len(entries) > 1000:
        raise BadRequest("devices: at most 1000 ICCID or ICCID/DEVICEID")
    out = set()
    for entry in entries:
        iccid, sep, device = entry.partition("/")
        iccid = parse_iccid(iccid, force=True)
        out.add(f"{iccid}/{parse_device_id(device)}" if sep else iccid)
    return sorted(out)


def start_rollout(store: Store, actor: Actor, label: str, body: str, *, stages: list[int],
                  devices: list[str], max_failures: int, priority: int | None,
                  require_json: bool | None, comment: str,
                  service_json: bool) -> dict[str, Any]:
    key, value = parse_label(label)
    _, configs, rollouts = _fleet_ops(store)
    raw = configs.checked_body((key, value), body, require_json=require_json,
                               service_json=service_json)
    return rollouts.start(actor, key, value, raw, stages=stages, devices=devices,
                          max_failures=max_failures, priority=priority,
                          require_json=require_json, comment=parse_comment(comment or None))


ROLLOUT_ACTIONS = ("pause", "resume", "abort")


def change_rollout(store: Store, actor: Actor, rollout_id: int, action: str) -> dict[str, Any]:
    """Pause, resume or abort (= roll back: the label's previous body is desired again)."""
    if action not in ROLLOUT_ACTIONS:
        raise BadRequest("action must be pause, resume or abort")
    _, _, rollouts = _fleet_ops(store)
    return dict(getattr(rollouts, action)(actor, rollout_id))
