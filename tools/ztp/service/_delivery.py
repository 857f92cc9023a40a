"""The gateway-facing side: PSK lookups, gateway events, configuration delivery to devices
and their telemetry (the contract of docs/INTERFACES.md).

The gateway vouches for the SIM identity (it verified the device's PSK); the service checks
that the request names the same SIM, that the SIM is active and, if bound, in its device.
The common requests take a fast path of one SELECT and one audit INSERT; anything unusual
(unknown or suspended SIM, a move, a binding, a rotation to confirm) takes the locking full
path, which records the alerts. Both give the same answers and audit records.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from ..iccid import iccid_from_hex
from ._audit import Actor, insert_audit_now
from ._configs import Configs
from ._context import StoreContext
from ._devices import Devices, note_delivery
from ._errors import BadRequest, Forbidden, NotFound
from ._fleet import LabelResolver, Resolved
from ._keys import KeyIntegrityError
from ._models import ConfigSlot, ConfigVersion, Sim, SimKey, Telemetry
from ._ota_models import OtaRotation
from ._prepared import DriverTransaction, Prepared
from ._reports import Report
from ._rotation_rules import OPEN_STATES, RotationRules
from ._schemas import DEFAULT_DEVICE, parse_event_kind, parse_identity_hex
from ._settings import TELEMETRY_BODY_MAX
from ._sims import Keys, sim_row

__all__ = ["FULL_PATH", "Delivery", "NoOwnConfig", "deliver_fast"]

# The device and PSK lookups run for every SIM request: their statements are compiled once
# per dialect and run on the driver (``_prepared``), so a request costs one SELECT, one audit
# INSERT, the device-state upsert and the commit, with little Python around them.
#
# The SIM's state and binding, its configuration for the device and its default (the current
# versions: up to two rows), and whether an open OTA rotation waits for the key tag the
# gateway verified (then the full path confirms it).
_ROTATION_WAITS = select(OtaRotation.id).where(
    OtaRotation.sim_id == Sim.id, OtaRotation.state.in_(OPEN_STATES),
    OtaRotation.new_tag == bindparam("tag")).exists()
_DEVICE_LOOKUP = Prepared(
    select(Sim.id, Sim.iccid, Sim.state, Sim.bind_first_device, Sim.bound_device_id,
           Sim.last_device_id, _ROTATION_WAITS.label("rotation"), ConfigSlot.device_key,
           ConfigVersion.version, ConfigVersion.body)
    .outerjoin(ConfigSlot, (ConfigSlot.sim_id == Sim.id)
               & ConfigSlot.device_key.in_([bindparam("device"), bindparam("default")]))
    .outerjoin(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
               & (ConfigVersion.version == ConfigSlot.current_version))
    .where(Sim.identity_hex == bindparam("ident")),
    ("ident", "device", "default", "tag"))
_PSK_LOOKUP = Prepared(
    select(Sim.iccid, Sim.state, SimKey.tag, SimKey.master_version, SimKey.sealed)
    .outerjoin(SimKey, (SimKey.sim_id == Sim.id) & (SimKey.kind == "psk")
               & (SimKey.state == "active"))
    .where(Sim.identity_hex == bindparam("ident"))
    .order_by(SimKey.id),
    ("ident",))
# First device seen by an unbound SIM: compare-and-set, so a concurrent request that set it
# first sends this one down the full (locking) path.
_SET_FIRST_DEVICE = Prepared(
    update(Sim).where(Sim.id == bindparam("sim_id"), Sim.last_device_id.is_(None),
                      Sim.state == "active", Sim.bind_first_device.is_(False))
    .values(last_device_id=bindparam("device")),
    ("sim_id", "device"))
FULL_PATH = object()  # the fast path declines; the caller runs the full one


@dataclass(frozen=True)
class NoOwnConfig:
    """The fast path found an active SIM in its device but no configuration of its own or
    default: label configurations (or a miss) decide, on the caller's session."""

    sim_id: int
    iccid: str


def deliver_fast(
    conn: Connection | DriverTransaction, now_ms: int, actor: Actor, identity_hex: str,
    device_id: str, key_tag: str,
) -> tuple[bytes, int, str] | NoOwnConfig | object:
    """The common delivery in one SELECT (+ one UPDATE the first time) + the audit row and
    the device state, on ``conn`` in its transaction: an active SIM in the device it was last
    seen in (or seen for the first time, unbound), no rotation to confirm, a configuration of
    its own or a default. Anything else (unknown or suspended SIM, binding, a move, a
    rotation) returns :data:`FULL_PATH` before writing anything: the caller runs the locking
    path, which records the alerts. Same answers and audit records as the full path.

    Returns:
        ``(body, version, slot)``; :class:`NoOwnConfig` (the first-device UPDATE may be
        done: the caller goes on in the same transaction or rolls it back); ``FULL_PATH``.
    """
    rows = _DEVICE_LOOKUP.rows(conn, {
        "ident": identity_hex, "device": device_id, "default": DEFAULT_DEVICE,
        "tag": key_tag})
    if not rows:
        return FULL_PATH
    first = rows[0]
    if first.state != "active" or first.rotation:
        return FULL_PATH
    if first.bind_first_device:
        if first.bound_device_id != device_id or first.last_device_id != device_id:
            return FULL_PATH
    elif first.last_device_id != device_id:
        if first.last_device_id is not None:
            return FULL_PATH  # a move: alerted by the full path
        if _SET_FIRST_DEVICE.run(conn, {"sim_id": first.id, "device": device_id}) != 1:
            return FULL_PATH
    slots = {r.device_key: r for r in rows if r.device_key is not None}
    for device_key in (device_id, DEFAULT_DEVICE):
        r = slots.get(device_key)
        if r is not None and r.body is not None:
            body = bytes(r.body)
            insert_audit_now(conn, now_ms, actor, "config.deliver", iccid=first.iccid,
                             device_id=device_id, version=r.version,
                             detail={"slot": device_key, "key_tag": key_tag,
                                     "bytes": len(body)})
            note_delivery(conn, now_ms, first.id, device_id, Resolved(
                DEFAULT_DEVICE if device_key == DEFAULT_DEVICE else "device", r.version, body))
            return body, r.version, device_key
    return NoOwnConfig(first.id, first.iccid)


class Delivery:
    """What gateways and, through them, devices ask of the service."""

    def __init__(self, ctx: StoreContext, keys: Keys, configs: Configs,
                 rules: RotationRules) -> None:
        self._ctx = ctx
        self._keys = keys
        self._configs = configs
        self._rules = rules
        self._audit = ctx.audit
        self.s = ctx.s

    def psks(self, actor: Actor, identity_hex: str) -> dict[str, Any]:
        """``GET /v1/gateway/psks``: the active PSKs of an active SIM, opened, for
        the gateway's TLS handshake (every lookup is audited).

        Raises:
            NotFound: ``unknown_sim``: unknown, suspended, or no PSK that opens.
        """
        # Fast path: an active SIM whose active PSKs all open (one SELECT). Anything else
        # (unknown, suspended, no key, a key failing to open: alerts) takes the full path.
        rows = _PSK_LOOKUP.rows(self.s.connection(), {"ident": identity_hex})
        if rows and rows[0].state == "active" and rows[0].tag is not None:
            try:
                keys = [(r.tag, self._ctx.keyring.open(r.sealed, iccid=r.iccid, kind="psk",
                                                       tag=r.tag, master_version=r.master_version))
                        for r in rows]
            except KeyIntegrityError:
                keys = []
            if keys:
                self._audit.record_now(actor, "psk.lookup", iccid=rows[0].iccid,
                                       detail={"tags": [t for t, _ in keys]})
                return {"identity": identity_hex, "iccid": rows[0].iccid,
                        "keys": [{"tag": t, "psk": k.hex()} for t, k in keys]}
        sim = self.s.scalar(select(Sim).where(Sim.identity_hex == identity_hex))
        if sim is None or sim.state != "active":
            raise NotFound("unknown or suspended SIM", code="unknown_sim")
        keys = self._keys.usable(actor, sim, "psk")
        if not keys:
            raise NotFound("SIM has no usable PSK", code="unknown_sim")
        self._audit.record(actor, "psk.lookup", iccid=sim.iccid,
                           detail={"tags": [t for t, _ in keys]})
        return {"identity": identity_hex, "iccid": sim.iccid,
                "keys": [{"tag": t, "psk": k.hex()} for t, k in keys]}

    def event(
        self, actor: Actor, kind: object, identity: object, detail: object
    ) -> None:
        """Record what a gateway saw (a binder failure, a replay, an ICCID mismatch:
        alerts) in the audit log, so the operator sees the whole path in one place.

        Raises:
            BadRequest: a bad kind, identity or detail.
        """
        kind = parse_event_kind(kind)
        ident = parse_identity_hex(identity) if identity is not None else None
        if detail is None:
            detail = {}
        if not isinstance(detail, dict):
            raise BadRequest("detail must be an object")
        iccid = iccid_from_hex(ident) if ident else None
        severity = "alert" if kind in ("iccid_mismatch", "binder_failure", "replay") else "info"
        self._audit.record(actor, f"gateway.{kind}", iccid=iccid, severity=severity,
                           detail={"identity": ident, **detail})

    def _device_request(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str,
    ) -> Sim:
        """Common checks of the device endpoints (the gateway vouches for ``identity_hex``)."""
        if iccid_hex != identity_hex:
            self._audit.record(actor, "device.iccid_mismatch", severity="alert",
                               device_id=device_id, keep_on_error=True,
                               iccid=iccid_from_hex(identity_hex),
                               detail={"identity": identity_hex, "iccid_param": iccid_hex})
            raise Forbidden("iccid does not match the verified PSK identity",
                            code="iccid_mismatch")
        sim = self.s.scalar(select(Sim).where(Sim.identity_hex == identity_hex)
                            .with_for_update())
        if sim is None:
            raise NotFound("unknown SIM", code="unknown_sim")
        if sim.state != "active":
            self._audit.record(actor, "device.refused", iccid=sim.iccid, device_id=device_id,
                               keep_on_error=True,
                               detail={"reason": "suspended"})
            raise Forbidden("SIM is suspended", code="sim_suspended")
        if sim.bind_first_device:
            if sim.bound_device_id is None:
                sim.bound_device_id = device_id
                self._audit.record(actor, "sim.bind", iccid=sim.iccid, device_id=device_id)
            elif sim.bound_device_id != device_id:
                self._audit.record(actor, "sim.moved", iccid=sim.iccid, device_id=device_id,
                                   severity="alert", keep_on_error=True,
                                   detail={"bound_device_id": sim.bound_device_id, "refused": True})
                raise Forbidden("SIM is bound to another device", code="device_mismatch")
        elif sim.last_device_id is not None and sim.last_device_id != device_id:
            self._audit.record(actor, "sim.moved", iccid=sim.iccid, device_id=device_id,
                               severity="alert",
                               detail={"previous_device_id": sim.last_device_id, "refused": False})
        sim.last_device_id = device_id
        return sim

    def _before_key_use(self, identity_hex: str, key_tag: str) -> None:
        """Lock order: a request that will confirm an OTA rotation (and retire the old key,
        a feed change) takes the feed lock before the SIM row."""
        if self._rules.confirmation_due(identity_hex, key_tag):
            self._ctx.feed.lock()

    def deliver_config(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str, key_tag: str,
    ) -> tuple[bytes, int, str] | None:
        """The body for a device: its own configuration, else the SIM's default.

        Returns None when neither exists (the binding and the miss are still recorded).
        """
        if iccid_hex == identity_hex:
            fast = self._deliver_fast(actor, identity_hex, device_id, key_tag)
            if fast is not FULL_PATH:
                return fast  # type: ignore[return-value]
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._rules.note_key_use(actor, sim, key_tag)
        for device_key in (device_id, DEFAULT_DEVICE):
            slot = self._configs.slot(sim, device_key)
            cur = self._configs.current(slot) if slot else None
            if cur is not None and cur.body is not None:
                self._audit.record(actor, "config.deliver", iccid=sim.iccid, device_id=device_id,
                                   version=cur.version,
                                   detail={"slot": device_key, "key_tag": key_tag,
                                           "bytes": len(cur.body)})
                self._note_delivery(sim.id, device_id, Resolved(
                    DEFAULT_DEVICE if device_key == DEFAULT_DEVICE else "device", cur.version,
                    cur.body))
                return cur.body, cur.version, device_key
        return self._deliver_by_label(actor, sim.id, sim.iccid, sim.labels_json, device_id,
                                      key_tag, self._audit.record)

    def _deliver_fast(
        self, actor: Actor, identity_hex: str, device_id: str, key_tag: str,
    ) -> tuple[bytes, int, str] | None | object:
        """:func:`deliver_fast`, then the label configurations for a SIM with none of its
        own (``FULL_PATH``: the caller runs the locking path)."""
        found = deliver_fast(self.s.connection(), self._ctx.now_ms, actor, identity_hex,
                             device_id, key_tag)
        if not isinstance(found, NoOwnConfig):
            return found
        labels_json = self.s.connection().execute(
            select(Sim.labels_json).where(Sim.id == found.sim_id)).scalar()
        return self._deliver_by_label(actor, found.sim_id, found.iccid, labels_json or "{}",
                                      device_id, key_tag, self._audit.record_now)

    def _note_delivery(self, sim_id: int, device_id: str, delivered: Resolved | None) -> None:
        note_delivery(self.s.connection(), self._ctx.now_ms, sim_id, device_id, delivered)

    def _deliver_by_label(
        self, actor: Actor, sim_id: int, iccid: str, labels_json: str, device_id: str,
        key_tag: str, audit: Callable[..., None],
    ) -> tuple[bytes, int, str] | None:
        """No configuration of the SIM's own: the label configurations (``_fleet``); the
        slot answered is ``label:key=value``, the version that label's."""
        labels = json.loads(labels_json)
        found = LabelResolver(self.s, labels).resolve(iccid, device_id, labels) \
            if labels else None
        self._note_delivery(sim_id, device_id, found)
        if found is None:
            audit(actor, "config.miss", iccid=iccid, device_id=device_id,
                  detail={"key_tag": key_tag})
            return None
        detail: dict[str, Any] = {"slot": found.source, "key_tag": key_tag,
                                  "bytes": len(found.body)}
        if found.rollout_id is not None:
            detail["rollout"] = found.rollout_id
        audit(actor, "config.deliver", iccid=iccid, device_id=device_id,
              version=found.version, detail=detail)
        return found.body, found.version, found.source

    def record_report(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str, key_tag: str,
        report: Report,
    ) -> None:
        """A device's report of its configuration (``_reports``; issue 17), refused like any
        device request the gateway did not vouch for (ICCID mismatch: 403 and an alert;
        suspended SIM; another device on a bound SIM), then recorded as device state.

        Raises:
            Forbidden: ICCID mismatch, suspended, bound elsewhere. NotFound: unknown SIM.
        """
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._rules.note_key_use(actor, sim, key_tag)
        Devices(self.s, self._ctx.now_ms, self._audit.record).record_report(
            actor, sim, device_id, key_tag, report)

    def store_telemetry(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str, key_tag: str,
        body: bytes, keep: int,
    ) -> None:
        """Keep a device's telemetry record (the newest ``keep`` per SIM; older
        ones are deleted), after the same checks as a configuration delivery.

        Raises:
            BadRequest: too large. Forbidden: ICCID mismatch, suspended, bound elsewhere.
            NotFound: unknown SIM.
        """
        if len(body) > TELEMETRY_BODY_MAX:
            raise BadRequest("telemetry too large")  # the HTTP layer answers 413 before this
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._rules.note_key_use(actor, sim, key_tag)
        self.s.add(Telemetry(sim_id=sim.id, device_id=device_id, received_ms=self._ctx.now_ms,
                             gateway=actor.gateway or "", body=body))
        self.s.flush()
        # Bounded storage: keep the newest `keep` records of this SIM.
        cutoff = self.s.scalar(select(Telemetry.id).where(Telemetry.sim_id == sim.id)
                               .order_by(Telemetry.id.desc()).offset(keep).limit(1))
        if cutoff is not None:
            self.s.execute(delete(Telemetry).where(Telemetry.sim_id == sim.id,
                                                   Telemetry.id <= cutoff))
        self._audit.record(actor, "telemetry.store", iccid=sim.iccid, device_id=device_id,
                           detail={"bytes": len(body), "key_tag": key_tag})

    def list_telemetry(self, iccid: str, limit: int) -> list[dict[str, Any]]:
        """The SIM's newest ``limit`` telemetry records, newest first (``body`` as
        text when it is UTF-8, always ``body_hex``). Raises NotFound."""
        sim = sim_row(self.s, iccid)
        rows = self.s.scalars(select(Telemetry).where(Telemetry.sim_id == sim.id)
                              .order_by(Telemetry.id.desc()).limit(limit))
        out = []
        for t in rows:
            try:
                text_body: str | None = t.body.decode("utf-8")
            except UnicodeDecodeError:
                text_body = None
            out.append({"id": t.id, "device_id": t.device_id, "received_ms": t.received_ms,
                        "gateway": t.gateway, "body": text_body, "body_hex": t.body.hex()})
        return out
