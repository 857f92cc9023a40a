"""Device state: what each device (SIM + DeviceID) should hold, got and reported (issue 17).

Per device the service keeps what it delivered (source, version, digest, time) and the
device's last report (digest, version string, outcome, result code, time). What the device
should hold ("desired") is resolved when asked (``_fleet``), and the state follows:

- ``in_sync``: the device reports the digest of the desired body;
- ``failed``: it does not, and its last report is ``rejected`` or ``rolled_back`` of the
  desired body (delivered to it, or named in ``rejected``);
- ``pending``: anything else (not delivered yet, no report yet, a report of an older body);
- ``unmanaged``: nothing resolves for it (no configuration of its own, no default, no label).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ._errors import NotFound
from ._fleet import Audit, LabelResolver, Resolved, resolve_device, slot_bodies
from ._fleet_models import DeviceState
from ._models import Sim, SimLabel
from ._prepared import DriverTransaction, Prepared
from ._reports import FAILED_OUTCOMES, Report
from ._rollouts import Rollouts

__all__ = ["DEVICE_STATES", "Devices", "device_state_name", "note_delivery"]

DEVICE_STATES = ("in_sync", "pending", "failed", "unmanaged")
_STATE_TABLE = DeviceState.__table__
_DELIVERED = ("delivered_source", "delivered_version", "delivered_digest", "delivered_ms")


def _seen_upsert(dialect: Any, changed: tuple[str, ...]) -> Prepared:
    """The device's row inserted, or its ``last_seen_ms`` and ``changed`` columns updated
    (to the values the INSERT would have written), in one statement."""
    insert = dialect.insert(_STATE_TABLE)
    return Prepared(
        insert.on_conflict_do_update(
            index_elements=["sim_id", "device_id"],
            set_={c: insert.excluded[c] for c in ("last_seen_ms", *changed)}),
        ("sim_id", "device_id", "first_seen_ms", "last_seen_ms", *changed))


# note_delivery runs on every configuration request: (seen, seen + delivered) per dialect
_NOTE_DELIVERY = {name: (_seen_upsert(d, ()), _seen_upsert(d, _DELIVERED))
                  for name, d in (("sqlite", sqlite), ("postgresql", postgresql))}


def _upsert(conn: Connection, sim_id: int, device_id: str, now_ms: int,
            changes: dict[str, Any]) -> None:
    """Insert the device's row or update it, in one statement on both databases."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(_STATE_TABLE).values(
        sim_id=sim_id, device_id=device_id, first_seen_ms=now_ms, last_seen_ms=now_ms,
        **changes)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["sim_id", "device_id"], set_={"last_seen_ms": now_ms, **changes}))


def note_delivery(conn: Connection | DriverTransaction, now_ms: int, sim_id: int, device_id: str,
                  delivered: Resolved | None) -> None:
    """A configuration request: the device is seen; ``delivered`` is what it was given
    (None: nothing, it keeps what it holds)."""
    seen, seen_delivered = _NOTE_DELIVERY[conn.dialect.name]
    params: dict[str, Any] = {"sim_id": sim_id, "device_id": device_id,
                              "first_seen_ms": now_ms, "last_seen_ms": now_ms}
    if delivered is None:
        seen.run(conn, params)
    else:
        seen_delivered.run(conn, {
            **params, "delivered_source": delivered.source,
            "delivered_version": delivered.version, "delivered_digest": delivered.digest,
            "delivered_ms": now_ms})


def device_state_name(d: DeviceState, desired: Resolved | None) -> str:
    if desired is None:
        return "unmanaged"
    want = desired.digest
    if d.reported_digest == want and d.reported_ms is not None:
        return "in_sync"
    if d.outcome in FAILED_OUTCOMES and want in (d.delivered_digest, d.rejected_digest):
        return "failed"
    return "pending"


def device_view(d: DeviceState, iccid: str, labels: dict[str, str],
                desired: Resolved | None) -> dict[str, Any]:
    return {
        "iccid": iccid, "device_id": d.device_id, "labels": labels,
        "state": device_state_name(d, desired),
        "desired": None if desired is None else {
            "source": desired.source, "version": desired.version, "digest": desired.digest,
            "rollout": desired.rollout_id},
        "delivered": None if d.delivered_ms is None else {
            "source": d.delivered_source, "version": d.delivered_version,
            "digest": d.delivered_digest, "at_ms": d.delivered_ms},
        "reported": None if d.reported_ms is None else {
            "digest": d.reported_digest, "version": d.reported_version,
            "outcome": d.outcome, "code": d.result_code, "rejected": d.rejected_digest,
            "confirmed": d.confirmed_digest is not None
            and d.confirmed_digest == d.reported_digest,
            "at_ms": d.reported_ms},
        "first_seen_ms": d.first_seen_ms, "last_seen_ms": d.last_seen_ms,
    }


class Devices:
    """Reports in, device state out (``GET /v1/devices``, ``ztp devices``)."""

    def __init__(self, session: Session, now_ms: int, audit: Audit) -> None:
        self.s = session
        self.now_ms = now_ms
        self.audit = audit

    def record_report(self, actor: Any, sim: Sim, device_id: str, key_tag: str,
                      report: Report) -> None:
        """The device's report (the caller checked that the gateway vouches for the SIM and
        that the SIM may speak for this device); then the rollouts it concerns move on."""
        changes: dict[str, Any] = {
            "reported_digest": report.digest, "reported_version": report.version,
            "outcome": report.outcome, "result_code": report.code,
            "rejected_digest": report.rejected, "reported_ms": self.now_ms}
        if report.outcome == "confirmed":
            changes["confirmed_digest"] = report.digest
        _upsert(self.s.connection(), sim.id, device_id, self.now_ms, changes)
        self.audit(actor, "device.report", iccid=sim.iccid, device_id=device_id,
                   detail={**report.to_dict(), "key_tag": key_tag})
        Rollouts(self.s, self.now_ms, self.audit).evaluate_for(
            actor, json.loads(sim.labels_json))

    def _rows(self, *, iccid: str | None = None, device_id: str | None = None,
              label: tuple[str, str] | None = None, after: tuple[str, str] | None = None,
              ) -> list[tuple[DeviceState, str, int, dict[str, str]]]:
        q = (select(DeviceState, Sim.iccid, Sim.labels_json)
             .join(Sim, Sim.id == DeviceState.sim_id)
             .order_by(Sim.iccid, DeviceState.device_id))
        if label is not None:  # the sim_label index, not the JSON of every SIM
            q = q.join(SimLabel, SimLabel.sim_id == DeviceState.sim_id).where(
                SimLabel.key == label[0], SimLabel.value == label[1])
        if iccid is not None:
            q = q.where(Sim.iccid == iccid)
        if device_id is not None:
            q = q.where(DeviceState.device_id == device_id)
        if after is not None:
            q = q.where((Sim.iccid > after[0])
                        | ((Sim.iccid == after[0]) & (DeviceState.device_id > after[1])))
        out = []
        for d, sim_iccid, labels_json in self.s.execute(q):
            out.append((d, sim_iccid, d.sim_id, json.loads(labels_json)))
        return out

    def list(self, *, state: str | None, label: tuple[str, str] | None,
             after: tuple[str, str] | None, limit: int) -> list[dict[str, Any]]:
        rows = self._rows(label=label, after=after)
        slots = slot_bodies(self.s, (sim_id for _, _, sim_id, _ in rows))
        resolver = LabelResolver(self.s)
        out: list[dict[str, Any]] = []
        for d, iccid, sim_id, labels in rows:
            desired = resolve_device(resolver, slots, sim_id, iccid, labels, d.device_id)
            view = device_view(d, iccid, labels, desired)
            if state is None or view["state"] == state:
                out.append(view)
                if len(out) >= limit:
                    break
        return out

    def show(self, iccid: str, device_id: str) -> dict[str, Any]:
        rows = self._rows(iccid=iccid, device_id=device_id)
        if not rows:
            raise NotFound(f"device {device_id} of SIM {iccid} has not been seen",
                           code="unknown_device")
        d, iccid, sim_id, labels = rows[0]
        desired = resolve_device(LabelResolver(self.s, labels), slot_bodies(self.s, [sim_id]),
                                 sim_id, iccid, labels, d.device_id)
        return device_view(d, iccid, labels, desired)
