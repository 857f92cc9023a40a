"""Domain logic of the configuration service, on a SQLAlchemy session (no HTTP here).

Every function validates all of its input before it writes anything, and runs inside the
caller's transaction: an error rolls the whole request back (nothing half-applied; bulk imports
are one transaction). Writers lock the SIM row they change (``FOR UPDATE`` on PostgreSQL;
SQLite write transactions are serialized by ``BEGIN IMMEDIATE``), so per-SIM config versions
are gap-free and ordered under parallel writers.
"""

from __future__ import annotations

import functools
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from ..iccid import IccidError, iccid_from_hex, iccid_to_hex, normalize_iccid
from ._devices import Devices, note_delivery
from ._errors import BadRequest, Conflict, Forbidden, NotFound
from ._fleet import LabelResolver, Resolved
from ._keys import KeyIntegrityError, MasterKeyring
from ._models import (
    AuditEvent,
    ConfigSlot,
    ConfigVersion,
    PskChange,
    Sim,
    SimKey,
    Telemetry,
)
from ._reports import Report
from ._settings import CONFIG_BODY_MAX, TELEMETRY_BODY_MAX

__all__ = ["Actor", "Store"]

SIM_STATES = ("active", "suspended")
KEY_STATES = ("active", "retired")
KEY_KINDS = ("psk", "kic", "kid")
_KEY_LENGTHS = {"psk": (16, 32), "kic": (16, 24, 32), "kid": (16, 24, 32)}
DEFAULT_DEVICE = "default"
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LABEL_KEY = re.compile(r"[a-z0-9_.-]{1,32}")
_DEVICE_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){1,64}")
_IDENTITY_HEX = re.compile(r"[0-9a-fA-F]{20}")
_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_LABELS_MAX = 16
_LABEL_VALUE_MAX = 64
_COMMENT_MAX = 200
# control characters and lone surrogates (not storable as UTF-8): not in comments
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
PSK_CHANGES_PAGE = 1000
IMPORT_CHUNK = 5000  # rows per round of bulk statements inside one import transaction
IMPORT_CONFLICTS_SHOWN = 20  # clashing rows named in a key_exists answer (then a count)


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit log: a client id and, for devices, the gateway."""

    client_id: str
    gateway: str | None = None


# ---------------------------------------------------------------------------- validation


def parse_iccid(value: object, *, force: bool = False) -> str:
    """An ICCID from input; ``force`` accepts a wrong Luhn digit (never a wrong format)."""
    if not isinstance(value, str):
        raise BadRequest("iccid must be a string of 18-20 digits")
    try:
        return normalize_iccid(value, check_luhn=not force)
    except IccidError as exc:
        raise BadRequest(f"bad iccid: {exc}", code="invalid_iccid") from None


def parse_identity_hex(value: object, what: str = "identity") -> str:
    """Hex of the 10 EF_ICCID bytes -> lowercase hex (validated as BCD)."""
    if not isinstance(value, str) or not _IDENTITY_HEX.fullmatch(value):
        raise BadRequest(f"{what} must be 20 hex characters (EF_ICCID bytes)")
    try:
        iccid_from_hex(value)
    except IccidError as exc:
        raise BadRequest(f"bad {what}: {exc}") from None
    return value.lower()


def parse_device_id(value: object, *, allow_default: bool = False) -> str:
    if allow_default and value == DEFAULT_DEVICE:
        return DEFAULT_DEVICE
    if not isinstance(value, str) or not _DEVICE_HEX.fullmatch(value):
        extra = " or 'default'" if allow_default else ""
        raise BadRequest(f"device id must be hex of 1-64 bytes{extra}, got {str(value)[:40]!r}")
    return value.lower()


def parse_labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _LABELS_MAX:
        raise BadRequest(f"labels must be an object of at most {_LABELS_MAX} entries")
    for k, v in value.items():
        if not _LABEL_KEY.fullmatch(k):
            raise BadRequest(f"label key {k[:40]!r} must match [a-z0-9_.-]{{1,32}}")
        if not isinstance(v, str) or len(v) > _LABEL_VALUE_MAX:
            raise BadRequest(f"label {k!r}: value must be a string of <= 64 characters")
    return dict(value)


def parse_tag(value: object) -> str:
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise BadRequest("key tag must be 1-32 characters of A-Z a-z 0-9 _ . -")
    return value


def parse_key_hex(value: object, kind: str) -> bytes:
    lengths = _KEY_LENGTHS[kind]
    if not isinstance(value, str):
        raise BadRequest(f"{kind}: key must be a hex string")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise BadRequest(f"{kind}: key is not hex") from None
    if len(key) not in lengths:
        raise BadRequest(
            f"{kind}: key must be {' or '.join(map(str, lengths))} bytes, got {len(key)}"
        )
    return key


def parse_body(value: object, *, require_json: bool) -> bytes:
    """A configuration body: text, 1..254 bytes of UTF-8, JSON if required."""
    if not isinstance(value, str):
        raise BadRequest("body must be a string")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("body is not valid UTF-8 text") from None
    if not raw:
        raise BadRequest("body is empty (delete the configuration instead)")
    if len(raw) > CONFIG_BODY_MAX:
        raise BadRequest(
            f"body is {len(raw)} bytes of UTF-8; at most {CONFIG_BODY_MAX} allowed "
            "(seed: 'less than 255 characters')",
            code="body_too_long",
        )
    if require_json:
        try:
            json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"body must be JSON here: {exc}", code="invalid_json") from None
    return raw


_SIM_ROW_FIELDS = frozenset({"iccid", "psk", "tag", "labels", "kic", "kid"})
_CONFIG_ROW_FIELDS = frozenset({"iccid", "device_id", "body", "require_json", "comment"})


def _known_fields(row: dict[str, Any], known: frozenset[str], *, nulls: bool) -> None:
    """Only ``known`` fields; with ``nulls=False`` an optional field is left out, not null."""
    unknown = set(row) - known
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    if not nulls and any(v is None for v in row.values()):
        raise BadRequest("null is not a value here: leave the field out")


def _json_required(detail: str) -> Conflict:
    """A body that is not JSON for a configuration that requires JSON (require_json was set
    on it earlier and sticks): the request conflicts with the resource, 409."""
    return Conflict(f"{detail} (require_json is set on this configuration)",
                    code="invalid_json")


def parse_comment(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _COMMENT_MAX or _NOT_TEXT.search(value):
        raise BadRequest(f"comment must be text of <= {_COMMENT_MAX} characters without "
                         "control characters")
    return value


def parse_bool(value: object, name: str, default: bool | None = None) -> bool | None:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def parse_gateway_name(value: str | None) -> str:
    if value is None or not _GATEWAY_NAME.fullmatch(value):
        raise BadRequest("X-ZTP-Gateway must be 1-64 characters of A-Z a-z 0-9 _ . @ : -")
    return value


# ---------------------------------------------------------------------------- views


def sim_view(sim: Sim, keys: Sequence[SimKey] = ()) -> dict[str, Any]:
    return {
        "iccid": sim.iccid,
        "identity": sim.identity_hex,
        "state": sim.state,
        "labels": json.loads(sim.labels_json),
        "bind_first_device": sim.bind_first_device,
        "bound_device_id": sim.bound_device_id,
        "last_device_id": sim.last_device_id,
        "created_ms": sim.created_ms,
        "updated_ms": sim.updated_ms,
        "keys": [key_view(k) for k in keys],
    }


def key_view(key: SimKey) -> dict[str, Any]:
    # Never the key material: only what identifies it.
    return {"kind": key.kind, "tag": key.tag, "state": key.state,
            "master_version": key.master_version, "created_ms": key.created_ms,
            "created_by": key.created_by}


def version_view(v: ConfigVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "deleted": v.body is None,
        "body": v.body.decode("utf-8") if v.body is not None else None,
        "created_ms": v.created_ms,
        "created_by": v.created_by,
        "comment": v.comment,
    }


def audit_view(e: AuditEvent) -> dict[str, Any]:
    return {"id": e.id, "at_ms": e.at_ms, "actor": e.actor, "gateway": e.gateway,
            "action": e.action, "severity": e.severity, "iccid": e.iccid,
            "device_id": e.device_id, "version": e.version,
            "detail": json.loads(e.detail_json)}


# ---------------------------------------------------------------------------- hot statements
# The device and PSK lookups run for every SIM request: their statements are built once with
# bind parameters (SQLAlchemy then reuses the compiled form) and run on the connection
# (Core), so a request costs one SELECT, one audit INSERT and the commit.


@functools.cache
def _device_lookup() -> Select[Any]:
    """The SIM's state and binding, its configuration for the device and its default (the
    current versions: up to two rows), and whether an open OTA rotation waits for the key
    tag the gateway verified (then the full path confirms it)."""
    from ._ota_models import OtaRotation
    from ._rotation import OPEN_STATES

    rotation = select(OtaRotation.id).where(
        OtaRotation.sim_id == Sim.id, OtaRotation.state.in_(OPEN_STATES),
        OtaRotation.new_tag == bindparam("tag")).exists()
    return (
        select(Sim.id, Sim.iccid, Sim.state, Sim.bind_first_device, Sim.bound_device_id,
               Sim.last_device_id, rotation.label("rotation"), ConfigSlot.device_key,
               ConfigVersion.version, ConfigVersion.body)
        .outerjoin(ConfigSlot, (ConfigSlot.sim_id == Sim.id)
                   & ConfigSlot.device_key.in_([bindparam("device"), bindparam("default")]))
        .outerjoin(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
                   & (ConfigVersion.version == ConfigSlot.current_version))
        .where(Sim.identity_hex == bindparam("ident"))
    )


_PSK_LOOKUP = (
    select(Sim.iccid, Sim.state, SimKey.tag, SimKey.master_version, SimKey.sealed)
    .outerjoin(SimKey, (SimKey.sim_id == Sim.id) & (SimKey.kind == "psk")
               & (SimKey.state == "active"))
    .where(Sim.identity_hex == bindparam("ident"))
    .order_by(SimKey.id)
)
# First device seen by an unbound SIM: compare-and-set, so a concurrent request that set it
# first sends this one down the full (locking) path.
_SET_FIRST_DEVICE = (
    update(Sim).where(Sim.id == bindparam("sim_id"), Sim.last_device_id.is_(None),
                      Sim.state == "active", Sim.bind_first_device.is_(False))
    .values(last_device_id=bindparam("device"))
)
_AUDIT_INSERT = AuditEvent.__table__.insert()
_FULL_PATH = object()  # the fast path declines; the caller runs the full one

# ---------------------------------------------------------------------------- the store


class Store:
    """Operations on one session. ``now_ms`` comes from the injected clock."""

    def __init__(self, session: Session, keyring: MasterKeyring, now_ms: int) -> None:
        self.s = session
        self.keyring = keyring
        self.now_ms = now_ms
        self.kept: list[dict[str, Any]] = []
        self._feed_locked = False
        self._pg = session.get_bind().dialect.name == "postgresql"

    # ----------------------------------------------------------------- audit

    def audit(
        self,
        actor: Actor,
        action: str,
        *,
        iccid: str | None = None,
        device_id: str | None = None,
        version: int | None = None,
        severity: str = "info",
        detail: dict[str, Any] | None = None,
        keep_on_error: bool = False,
    ) -> None:
        """Record an audit event in this transaction.

        ``keep_on_error``: the event also lands in :attr:`kept`, which the HTTP layer writes
        in a fresh transaction when the request fails (a refusal must stay on record even
        though the request's own changes are rolled back).
        """
        fields = dict(
            at_ms=self.now_ms, actor=actor.client_id, gateway=actor.gateway, action=action,
            severity=severity, iccid=iccid, device_id=device_id, version=version,
            detail_json=json.dumps(detail or {}, sort_keys=True),
        )
        self.s.add(AuditEvent(**fields))
        if keep_on_error:
            self.kept.append(fields)

    def _audit_row(
        self, actor: Actor, action: str, *, iccid: str | None = None,
        device_id: str | None = None, version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return dict(at_ms=self.now_ms, actor=actor.client_id, gateway=actor.gateway,
                    action=action, severity="info", iccid=iccid, device_id=device_id,
                    version=version, detail_json=json.dumps(detail or {}, sort_keys=True))

    def audit_now(
        self, actor: Actor, action: str, *, iccid: str | None = None,
        device_id: str | None = None, version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """:meth:`audit` as one INSERT at once (no ORM unit of work): the hot paths."""
        self.s.connection().execute(_AUDIT_INSERT, dict(
            at_ms=self.now_ms, actor=actor.client_id, gateway=actor.gateway, action=action,
            severity="info", iccid=iccid, device_id=device_id, version=version,
            detail_json=json.dumps(detail or {}, sort_keys=True)))

    def replay_kept(self, kept: Sequence[dict[str, Any]]) -> None:
        for fields in kept:
            self.s.add(AuditEvent(**fields))

    def list_audit(
        self, *, iccid: str | None, action: str | None, severity: str | None,
        after: int, limit: int,
    ) -> list[dict[str, Any]]:
        q = select(AuditEvent).where(AuditEvent.id > after)
        if iccid:
            q = q.where(AuditEvent.iccid == iccid)
        if action:
            q = q.where(AuditEvent.action == action)
        if severity:
            q = q.where(AuditEvent.severity == severity)
        return [audit_view(e) for e in self.s.scalars(q.order_by(AuditEvent.id).limit(limit))]

    # ----------------------------------------------------------------- SIMs

    def _sim(self, iccid: str, *, lock: bool = False) -> Sim:
        q = select(Sim).where(Sim.iccid == iccid)
        if lock:
            q = q.with_for_update()
        sim = self.s.scalar(q)
        if sim is None:
            raise NotFound(f"SIM {iccid} is not registered", code="unknown_sim")
        return sim

    def _keys(self, sim: Sim) -> list[SimKey]:
        return list(self.s.scalars(
            select(SimKey).where(SimKey.sim_id == sim.id).order_by(SimKey.kind, SimKey.id)
        ))

    def _lock_feed(self) -> None:
        """Take the PSK change feed lock (PostgreSQL; SQLite writers are serialized anyway).

        Order the change feed by commit: ids are taken under this lock, which is held until
        commit, so a gateway reading ``after=N`` never misses a later-committed smaller id.
        Lock order, to rule out deadlocks: the feed first, then SIM rows in ICCID order.
        Every operation that may note a change takes it before it locks any SIM row.
        """
        if self._pg and not self._feed_locked:
            self.s.execute(text("LOCK TABLE psk_change IN SHARE ROW EXCLUSIVE MODE"))
        self._feed_locked = True

    def _note_psk_change(self, identity_hex: str) -> None:
        self._lock_feed()
        self.s.add(PskChange(identity_hex=identity_hex, at_ms=self.now_ms))

    def get_sim(self, iccid: str) -> dict[str, Any]:
        sim = self._sim(iccid)
        return sim_view(sim, self._keys(sim))

    def list_sims(
        self, *, state: str | None, label: tuple[str, str] | None, after: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        q = select(Sim).order_by(Sim.iccid)
        if state:
            q = q.where(Sim.state == state)
        if after:
            q = q.where(Sim.iccid > after)
        out: list[dict[str, Any]] = []
        for sim in self.s.scalars(q):
            if label and json.loads(sim.labels_json).get(label[0]) != label[1]:
                continue
            out.append(sim_view(sim, self._keys(sim)))
            if len(out) >= limit:
                break
        return out

    def create_sim(
        self, actor: Actor, iccid: str, *, state: str = "active",
        labels: dict[str, str] | None = None, bind_first_device: bool = False,
    ) -> Sim:
        if state not in SIM_STATES:
            raise BadRequest(f"state must be one of {', '.join(SIM_STATES)}")
        if self.s.scalar(select(Sim.id).where(Sim.iccid == iccid)) is not None:
            raise Conflict(f"SIM {iccid} is already registered", code="sim_exists")
        sim = Sim(iccid=iccid, identity_hex=iccid_to_hex(iccid, check_luhn=False), state=state,
                  labels_json=json.dumps(labels or {}, sort_keys=True),
                  bind_first_device=bind_first_device, bound_device_id=None,
                  last_device_id=None, created_ms=self.now_ms, updated_ms=self.now_ms)
        self.s.add(sim)
        self.s.flush()
        self.audit(actor, "sim.create", iccid=iccid,
                   detail={"state": state, "labels": labels or {},
                           "bind_first_device": bind_first_device})
        return sim

    def update_sim(
        self, actor: Actor, iccid: str, *, state: str | None = None,
        labels: dict[str, str] | None = None, bind_first_device: bool | None = None,
        clear_binding: bool = False,
    ) -> dict[str, Any]:
        if state is not None and state not in SIM_STATES:
            raise BadRequest(f"state must be one of {', '.join(SIM_STATES)}")
        if state is not None:
            self._lock_feed()
        sim = self._sim(iccid, lock=True)
        changes: dict[str, Any] = {}
        if state is not None and state != sim.state:
            changes["state"] = [sim.state, state]
            sim.state = state
            self._note_psk_change(sim.identity_hex)  # suspended SIMs get no PSK
        if labels is not None:
            changes["labels"] = labels
            sim.labels_json = json.dumps(labels, sort_keys=True)
        if bind_first_device is not None and bind_first_device != sim.bind_first_device:
            changes["bind_first_device"] = bind_first_device
            sim.bind_first_device = bind_first_device
        if clear_binding and sim.bound_device_id is not None:
            changes["bound_device_id"] = [sim.bound_device_id, None]
            sim.bound_device_id = None
        sim.updated_ms = self.now_ms
        self.audit(actor, "sim.update", iccid=iccid, detail=changes)
        return sim_view(sim, self._keys(sim))

    def delete_sim(self, actor: Actor, iccid: str) -> None:
        self._lock_feed()
        sim = self._sim(iccid, lock=True)
        self._note_psk_change(sim.identity_hex)
        self.s.delete(sim)
        self.audit(actor, "sim.delete", iccid=iccid)

    # ----------------------------------------------------------------- keys

    def add_key(
        self, actor: Actor, iccid: str, kind: str, *, key: bytes | None, tag: str | None,
        sim: Sim | None = None,
    ) -> tuple[SimKey, bytes | None]:
        """Seal and store a key (generated when ``key`` is None). Returns (row, generated)."""
        if kind not in KEY_KINDS:
            raise BadRequest(f"key kind must be one of {', '.join(KEY_KINDS)}")
        if kind == "psk":
            self._lock_feed()
        sim = sim or self._sim(iccid, lock=True)
        existing = {k.tag for k in self._keys(sim) if k.kind == kind}
        if tag is None:
            numeric = [int(t) for t in existing if t.isdigit()]
            tag = str(max(numeric, default=0) + 1)
        if tag in existing:
            raise Conflict(f"SIM {iccid} already has a {kind} with tag {tag!r}",
                           code="key_exists")
        generated = None
        if key is None:
            key = generated = secrets.token_bytes(_KEY_LENGTHS[kind][0])
        master_version, sealed = self.keyring.seal(key, iccid=iccid, kind=kind, tag=tag)
        row = SimKey(sim_id=sim.id, kind=kind, tag=tag, state="active",
                     master_version=master_version, sealed=sealed, created_ms=self.now_ms,
                     created_by=actor.client_id)
        self.s.add(row)
        self.s.flush()
        if kind == "psk":
            self._note_psk_change(sim.identity_hex)
        self.audit(actor, "key.add", iccid=iccid,
                   detail={"kind": kind, "tag": tag, "generated": generated is not None,
                           "master_version": master_version})
        return row, generated

    def set_key_state(self, actor: Actor, iccid: str, kind: str, tag: str, state: str) -> SimKey:
        if state not in KEY_STATES:
            raise BadRequest(f"key state must be one of {', '.join(KEY_STATES)}")
        if kind == "psk":
            self._lock_feed()
        sim = self._sim(iccid, lock=True)
        row = self._key_row(sim, kind, tag)
        if state == "retired" and row.state != state:
            from ._rotation import check_key_change

            check_key_change(self, sim, kind, tag)  # never before the SIM confirmed
        if row.state != state:
            row.state = state
            if kind == "psk":
                self._note_psk_change(sim.identity_hex)
        self.audit(actor, "key.state", iccid=iccid,
                   detail={"kind": kind, "tag": tag, "state": state})
        return row

    def delete_key(self, actor: Actor, iccid: str, kind: str, tag: str) -> None:
        if kind == "psk":
            self._lock_feed()
        sim = self._sim(iccid, lock=True)
        row = self._key_row(sim, kind, tag)
        from ._rotation import check_key_change

        check_key_change(self, sim, kind, tag)  # an open rotation keeps its keys
        self.s.delete(row)
        if kind == "psk":
            self._note_psk_change(sim.identity_hex)
        self.audit(actor, "key.delete", iccid=iccid, detail={"kind": kind, "tag": tag})

    def _key_row(self, sim: Sim, kind: str, tag: str) -> SimKey:
        row = self.s.scalar(select(SimKey).where(
            SimKey.sim_id == sim.id, SimKey.kind == kind, SimKey.tag == tag))
        if row is None:
            raise NotFound(f"SIM {sim.iccid} has no {kind} with tag {tag!r}", code="unknown_key")
        return row

    def usable_keys(self, actor: Actor, sim: Sim, kind: str) -> list[tuple[str, bytes]]:
        """Active keys of ``kind``, opened. A key that fails to open is skipped and alerted."""
        out: list[tuple[str, bytes]] = []
        for row in self._keys(sim):
            if row.kind != kind or row.state != "active":
                continue
            try:
                key = self.keyring.open(row.sealed, iccid=sim.iccid, kind=row.kind,
                                        tag=row.tag, master_version=row.master_version)
            except KeyIntegrityError as exc:
                self.audit(actor, "key.integrity_failure", iccid=sim.iccid, severity="alert",
                           keep_on_error=True,
                           detail={"kind": row.kind, "tag": row.tag, "reason": str(exc)})
                continue
            out.append((row.tag, key))
        return out

    def import_sims(
        self, actor: Actor, rows: Iterable[dict[str, Any]], *, force: bool,
    ) -> dict[str, int]:
        """Vendor key file rows ``{iccid, psk, tag?, labels?, kic?, kid?}``, all or nothing.

        New ICCIDs are registered; known ones get the PSK as an extra key (rotation). A key
        the SIM already holds (same bytes, under the row's tag or, untagged, under any tag)
        is left as it is and counted ``unchanged``: importing the same file twice changes
        nothing the second time.

        Raises:
            Conflict: ``key_exists``: a tag the SIM already holds with a different key; every
                such row is named (the first ``IMPORT_CONFLICTS_SHOWN``, then a count).
        """
        parsed: list[tuple[int, str, bytes, str | None, dict[str, str], dict[str, bytes]]] = []
        seen: set[tuple[str, str | None]] = set()
        seen_iccids: set[str] = set()  # (a set: the import is linear in its rows)
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise BadRequest(f"row {n}: must be an object")
            try:
                _known_fields(row, _SIM_ROW_FIELDS, nulls=True)  # as CSV rows: "" or null
                iccid = parse_iccid(row.get("iccid"), force=force)
                psk = parse_key_hex(row.get("psk"), "psk")
                tag = parse_tag(row["tag"]) if row.get("tag") not in (None, "") else None
                labels = parse_labels(row.get("labels"))
                ota = {k: parse_key_hex(row[k], k) for k in ("kic", "kid")
                       if row.get(k) not in (None, "")}
            except BadRequest as exc:
                raise BadRequest(f"row {n}: {exc.detail}", code=exc.code) from None
            if (iccid, tag) in seen or (tag is None and iccid in seen_iccids):
                raise Conflict(f"row {n}: ICCID {iccid} appears twice", code="duplicate_row")
            seen.add((iccid, tag))
            seen_iccids.add(iccid)
            parsed.append((n, iccid, psk, tag, labels, ota))
        created = added = unchanged = 0
        self._lock_feed()
        self.s.flush()  # anything pending goes before our Core statements
        # SIM rows are locked in ICCID order (see _lock_feed), chunk by chunk; rows keep
        # their numbers. Each chunk is a few statements (executemany), in this transaction.
        items = sorted(parsed, key=lambda r: (r[1], r[0]))
        conflicts: list[tuple[int, str]] = []  # every clashing row, so one fix fixes all
        for start in range(0, len(items), IMPORT_CHUNK):
            c, a, u = self._import_sims_chunk(actor, items[start:start + IMPORT_CHUNK],
                                              conflicts)
            created += c
            added += a
            unchanged += u
        if conflicts:  # the transaction is rolled back: nothing of this request stays
            conflicts.sort()
            shown = "; ".join(f"row {n}: {msg}" for n, msg in
                              conflicts[:IMPORT_CONFLICTS_SHOWN])
            more = len(conflicts) - IMPORT_CONFLICTS_SHOWN
            raise Conflict(shown + (f"; and {more} more row(s)" if more > 0 else ""),
                           code="key_exists")
        self.audit(actor, "sim.import", detail={"created": created, "keys_added": added,
                                                "unchanged": unchanged})
        return {"sims_created": created, "psks_added": added, "unchanged": unchanged}

    def _sim_ids(self, iccids: Sequence[str], *, lock: bool) -> dict[str, tuple[int, str]]:
        """``{iccid: (id, identity_hex)}`` of the registered ones (locked in ICCID order)."""
        q = (select(Sim.iccid, Sim.id, Sim.identity_hex).where(Sim.iccid.in_(iccids))
             .order_by(Sim.iccid))
        if lock and self._pg:
            q = q.with_for_update()
        return {i: (sid, ident) for i, sid, ident in self.s.connection().execute(q)}

    def _import_sims_chunk(
        self, actor: Actor,
        items: Sequence[tuple[int, str, bytes, str | None, dict[str, str], dict[str, bytes]]],
        conflicts: list[tuple[int, str]],
    ) -> tuple[int, int, int]:
        """Insert one round of rows; returns (SIMs created, PSKs added, PSKs unchanged).
        Rows whose tag clashes go to ``conflicts``; once there is one, nothing is inserted
        (the caller raises, and the transaction rolls back)."""
        conn = self.s.connection()
        iccids = sorted({it[1] for it in items})
        known = self._sim_ids(iccids, lock=True)
        new_sims: dict[str, dict[str, Any]] = {}
        for _n, iccid, _psk, _tag, labels, _ota in items:
            if iccid not in known and iccid not in new_sims:
                new_sims[iccid] = dict(
                    iccid=iccid, identity_hex=iccid_to_hex(iccid, check_luhn=False),
                    state="active", labels_json=json.dumps(labels, sort_keys=True),
                    bind_first_device=False, bound_device_id=None, last_device_id=None,
                    created_ms=self.now_ms, updated_ms=self.now_ms)
        audit: list[dict[str, Any]] = []
        if new_sims:
            conn.execute(Sim.__table__.insert(), list(new_sims.values()))
            for iccid, row in new_sims.items():
                audit.append(self._audit_row(
                    actor, "sim.create", iccid=iccid,
                    detail={"state": "active", "labels": json.loads(row["labels_json"]),
                            "bind_first_device": False}))
            known = self._sim_ids(iccids, lock=False)
        # (sim id, kind) -> {tag: (sealed, master version) or None for one added here}
        tags: dict[tuple[int, str], dict[str, tuple[bytes, int] | None]] = {}
        if len(new_sims) < len(iccids):  # some were registered before: their keys
            for sim_id, kind, tag, sealed, mv in conn.execute(
                    select(SimKey.sim_id, SimKey.kind, SimKey.tag, SimKey.sealed,
                           SimKey.master_version)
                    .where(SimKey.sim_id.in_([known[i][0] for i in iccids
                                              if i not in new_sims]))):
                tags.setdefault((sim_id, kind), {})[tag] = (sealed, mv)

        def holds(iccid: str, kind: str, tag: str, stored: tuple[bytes, int] | None,
                  key: bytes) -> bool:
            if stored is None:
                return False
            old = self.keyring.open(stored[0], iccid=iccid, kind=kind, tag=tag,
                                    master_version=stored[1])
            return hmac.compare_digest(old, key)  # constant time: these are secrets

        keys: list[dict[str, Any]] = []
        feed: list[dict[str, Any]] = []
        unchanged = 0
        for n, iccid, psk, tag, _labels, ota in items:
            sim_id, identity_hex = known[iccid]
            for kind, key in (("psk", psk), *ota.items()):
                existing = tags.setdefault((sim_id, kind), {})
                key_tag = tag
                if key_tag is None:
                    if any(holds(iccid, kind, t, v, key) for t, v in existing.items()):
                        unchanged += kind == "psk"
                        continue
                    numeric = [int(t) for t in existing if t.isdigit()]
                    key_tag = str(max(numeric, default=0) + 1)
                if key_tag in existing:
                    if holds(iccid, kind, key_tag, existing[key_tag], key):
                        unchanged += kind == "psk"  # already there: a re-import
                        continue
                    conflicts.append((n, f"SIM {iccid} already has a different {kind} with "
                                         f"tag {key_tag!r}"))
                    continue
                existing[key_tag] = None
                master_version, sealed = self.keyring.seal(key, iccid=iccid, kind=kind,
                                                           tag=key_tag)
                keys.append(dict(sim_id=sim_id, kind=kind, tag=key_tag, state="active",
                                 master_version=master_version, sealed=sealed,
                                 created_ms=self.now_ms, created_by=actor.client_id))
                if kind == "psk":
                    feed.append(dict(identity_hex=identity_hex, at_ms=self.now_ms))
                audit.append(self._audit_row(
                    actor, "key.add", iccid=iccid,
                    detail={"kind": kind, "tag": key_tag, "generated": False,
                            "master_version": master_version}))
        if conflicts:
            return len(new_sims), 0, unchanged
        if keys:
            conn.execute(SimKey.__table__.insert(), keys)
        if feed:
            conn.execute(PskChange.__table__.insert(), feed)
        if audit:
            conn.execute(_AUDIT_INSERT, audit)
        return len(new_sims), len(feed), unchanged

    # ----------------------------------------------------------------- configurations

    def _slot(self, sim: Sim, device_key: str) -> ConfigSlot | None:
        return self.s.scalar(select(ConfigSlot).where(
            ConfigSlot.sim_id == sim.id, ConfigSlot.device_key == device_key))

    def _current(self, slot: ConfigSlot) -> ConfigVersion | None:
        return self.s.scalar(select(ConfigVersion).where(
            ConfigVersion.slot_id == slot.id, ConfigVersion.version == slot.current_version))

    def set_config(
        self, actor: Actor, iccid: str, device_key: str, body: str | None, *,
        require_json: bool | None = None, if_version: int | None = None, comment: str = "",
        action: str = "config.set", sim: Sim | None = None,
    ) -> dict[str, Any]:
        """A new version of the (iccid, device) configuration; ``body=None`` deletes it.

        Raises:
            BadRequest: body too long / empty / not JSON where required.
            Conflict: ``if_version`` is not the current version (optimistic locking).
            NotFound: unknown SIM, or deleting a configuration that does not exist.
        """
        sim = sim or self._sim(iccid, lock=True)
        slot = self._slot(sim, device_key)
        need_json = bool(require_json if require_json is not None
                         else (slot.require_json if slot else False))
        try:
            raw = None if body is None else parse_body(body, require_json=need_json)
        except BadRequest as exc:
            if require_json is None and need_json:  # the configuration's own requirement
                raise _json_required(exc.detail) from None
            raise
        current = slot.current_version if slot else 0
        if if_version is not None and if_version != current:
            raise Conflict(f"configuration is at version {current}, not {if_version}",
                           code="version_conflict")
        if slot is None:
            if raw is None:
                raise NotFound(f"no configuration for SIM {iccid} device {device_key}",
                               code="unknown_config")
            slot = ConfigSlot(sim_id=sim.id, device_key=device_key, current_version=0,
                              require_json=need_json)
            self.s.add(slot)
            self.s.flush()
        elif raw is None and (cur := self._current(slot)) is not None and cur.body is None:
            raise NotFound(f"configuration of SIM {iccid} device {device_key} is already "
                           "deleted", code="unknown_config")
        slot.require_json = need_json
        slot.current_version += 1
        row = ConfigVersion(slot_id=slot.id, version=slot.current_version, body=raw,
                            created_ms=self.now_ms, created_by=actor.client_id,
                            comment=comment)
        self.s.add(row)
        self.s.flush()
        self.audit(actor, action if raw is not None else "config.delete", iccid=iccid,
                   device_id=device_key, version=row.version,
                   detail={"bytes": len(raw) if raw is not None else None,
                           "comment": comment})
        return {"iccid": iccid, "device_id": device_key, "require_json": need_json,
                **version_view(row)}

    def get_config(self, iccid: str, device_key: str) -> dict[str, Any]:
        sim = self._sim(iccid)
        slot = self._slot(sim, device_key)
        cur = self._current(slot) if slot else None
        if slot is None or cur is None or cur.body is None:
            raise NotFound(f"no configuration for SIM {iccid} device {device_key}",
                           code="unknown_config")
        return {"iccid": iccid, "device_id": device_key, "require_json": slot.require_json,
                **version_view(cur)}

    def list_configs(self, iccid: str) -> list[dict[str, Any]]:
        sim = self._sim(iccid)
        out = []
        for slot in self.s.scalars(select(ConfigSlot).where(ConfigSlot.sim_id == sim.id)
                                   .order_by(ConfigSlot.device_key)):
            cur = self._current(slot)
            if cur is not None and cur.body is not None:
                out.append({"iccid": iccid, "device_id": slot.device_key,
                            "require_json": slot.require_json, **version_view(cur)})
        return out

    def history(self, iccid: str, device_key: str, limit: int) -> list[dict[str, Any]]:
        sim = self._sim(iccid)
        slot = self._slot(sim, device_key)
        if slot is None:
            raise NotFound(f"no configuration for SIM {iccid} device {device_key}",
                           code="unknown_config")
        rows = self.s.scalars(select(ConfigVersion).where(ConfigVersion.slot_id == slot.id)
                              .order_by(ConfigVersion.version.desc()).limit(limit))
        return [version_view(v) for v in rows]

    def rollback(
        self, actor: Actor, iccid: str, device_key: str, version: int, comment: str = "",
    ) -> dict[str, Any]:
        """A new version whose body is that of ``version`` (history is never rewritten).

        The slot keeps its ``require_json``: rolling a JSON-only slot back to a body that is
        not JSON is refused (BadRequest, invalid_json), never a way to switch the check off.
        """
        sim = self._sim(iccid, lock=True)
        slot = self._slot(sim, device_key)
        old = None
        if slot is not None:
            old = self.s.scalar(select(ConfigVersion).where(
                ConfigVersion.slot_id == slot.id, ConfigVersion.version == version))
        if old is None:
            raise NotFound(f"SIM {iccid} device {device_key} has no version {version}",
                           code="unknown_version")
        if old.body is None:
            raise BadRequest(f"version {version} is a deletion; nothing to roll back to")
        return self.set_config(
            actor, iccid, device_key, old.body.decode("utf-8"),
            comment=comment or f"rollback to version {version}", action="config.rollback",
            sim=sim,
        ) | {"rolled_back_to": version}

    def export_configs(self) -> list[dict[str, Any]]:
        q = (select(Sim.iccid, ConfigSlot, ConfigVersion)
             .join(ConfigSlot, ConfigSlot.sim_id == Sim.id)
             .join(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
                   & (ConfigVersion.version == ConfigSlot.current_version))
             .where(ConfigVersion.body.is_not(None))
             .order_by(Sim.iccid, ConfigSlot.device_key))
        return [{"iccid": iccid, "device_id": slot.device_key, "body": v.body.decode("utf-8"),
                 "require_json": slot.require_json, "version": v.version}
                for iccid, slot, v in self.s.execute(q)]

    def import_configs(self, actor: Actor, rows: Iterable[object]) -> dict[str, int]:
        """Set many configurations at once, all or nothing (``{iccid, device_id, body}``)."""
        items: list[tuple[int, str, str, str, bool | None, str]] = []
        seen: set[tuple[str, str]] = set()
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise BadRequest(f"row {n}: must be an object")
            try:
                _known_fields(row, _CONFIG_ROW_FIELDS, nulls=False)
                iccid = parse_iccid(row.get("iccid"), force=True)
                device = parse_device_id(row.get("device_id", DEFAULT_DEVICE),
                                         allow_default=True)
                rj = parse_bool(row.get("require_json"), "require_json")
                body = row.get("body")
                parse_body(body, require_json=bool(rj))
                comment = parse_comment(row.get("comment"))
            except BadRequest as exc:
                raise BadRequest(f"row {n}: {exc.detail}", code=exc.code) from None
            if (iccid, device) in seen:
                raise Conflict(f"row {n}: ICCID {iccid} device {device} appears twice",
                               code="duplicate_row")
            seen.add((iccid, device))
            items.append((n, iccid, device, str(body), rj, comment))
        # SIM rows are locked in ICCID order (no deadlock between two imports), chunk by
        # chunk; each chunk is a few bulk statements in this transaction. Same rows and
        # audit records as set_config one by one.
        self.s.flush()
        ordered = sorted(items, key=lambda r: (r[1], r[0]))
        for start in range(0, len(ordered), IMPORT_CHUNK):
            self._import_configs_chunk(actor, ordered[start:start + IMPORT_CHUNK])
        return {"imported": len(items)}

    def _import_configs_chunk(
        self, actor: Actor, items: Sequence[tuple[int, str, str, str, bool | None, str]],
    ) -> None:
        conn = self.s.connection()
        known = self._sim_ids(sorted({it[1] for it in items}), lock=True)
        for n, iccid, *_ in items:
            if iccid not in known:
                raise NotFound(f"row {n}: SIM {iccid} is not registered", code="unknown_sim")
        slot_t = ConfigSlot.__table__
        sim_ids = sorted({sid for sid, _ in known.values()})
        slots = {(sid, dev): (slot_id, cur, rj) for slot_id, sid, dev, cur, rj in conn.execute(
            select(ConfigSlot.id, ConfigSlot.sim_id, ConfigSlot.device_key,
                   ConfigSlot.current_version, ConfigSlot.require_json)
            .where(ConfigSlot.sim_id.in_(sim_ids)))}
        planned: list[tuple[int, str, str, bytes, bool, str, int]] = []
        new_slots: list[dict[str, Any]] = []
        bumps: list[dict[str, Any]] = []
        for n, iccid, device, body, rj, comment in items:
            sim_id = known[iccid][0]
            slot = slots.get((sim_id, device))
            need_json = bool(rj if rj is not None else (slot[2] if slot else False))
            try:
                raw = parse_body(body, require_json=need_json)
            except BadRequest as exc:
                if rj is None and need_json:  # the configuration's own requirement
                    raise _json_required(f"row {n}: {exc.detail}") from None
                raise BadRequest(f"row {n}: {exc.detail}", code=exc.code) from None
            version = (slot[1] if slot else 0) + 1
            if slot is None:
                new_slots.append(dict(sim_id=sim_id, device_key=device, current_version=1,
                                      require_json=need_json))
            else:
                bumps.append(dict(b_id=slot[0], b_version=version, b_rj=need_json))
            planned.append((sim_id, iccid, device, raw, need_json, comment or "import",
                            version))
        if new_slots:
            conn.execute(slot_t.insert(), new_slots)
            for slot_id, sid, dev in conn.execute(
                    select(ConfigSlot.id, ConfigSlot.sim_id, ConfigSlot.device_key)
                    .where(ConfigSlot.sim_id.in_(sorted({r["sim_id"] for r in new_slots})))):
                slots.setdefault((sid, dev), (slot_id, 0, False))
        if bumps:
            conn.execute(update(slot_t).where(slot_t.c.id == bindparam("b_id"))
                         .values(current_version=bindparam("b_version"),
                                 require_json=bindparam("b_rj")), bumps)
        versions: list[dict[str, Any]] = []
        audit: list[dict[str, Any]] = []
        for sim_id, iccid, device, raw, _need_json, comment, version in planned:
            versions.append(dict(slot_id=slots[(sim_id, device)][0], version=version,
                                 body=raw, created_ms=self.now_ms,
                                 created_by=actor.client_id, comment=comment))
            audit.append(self._audit_row(actor, "config.import", iccid=iccid,
                                         device_id=device, version=version,
                                         detail={"bytes": len(raw), "comment": comment}))
        conn.execute(ConfigVersion.__table__.insert(), versions)
        conn.execute(_AUDIT_INSERT, audit)

    # ----------------------------------------------------------------- gateway side

    def gateway_psks(self, actor: Actor, identity_hex: str) -> dict[str, Any]:
        # Fast path: an active SIM whose active PSKs all open (one SELECT). Anything else
        # (unknown, suspended, no key, a key failing to open: alerts) takes the full path.
        rows = self.s.connection().execute(_PSK_LOOKUP, {"ident": identity_hex}).all()
        if rows and rows[0].state == "active" and rows[0].tag is not None:
            try:
                keys = [(r.tag, self.keyring.open(r.sealed, iccid=r.iccid, kind="psk",
                                                  tag=r.tag, master_version=r.master_version))
                        for r in rows]
            except KeyIntegrityError:
                keys = []
            if keys:
                self.audit_now(actor, "psk.lookup", iccid=rows[0].iccid,
                               detail={"tags": [t for t, _ in keys]})
                return {"identity": identity_hex, "iccid": rows[0].iccid,
                        "keys": [{"tag": t, "psk": k.hex()} for t, k in keys]}
        sim = self.s.scalar(select(Sim).where(Sim.identity_hex == identity_hex))
        if sim is None or sim.state != "active":
            raise NotFound("unknown or suspended SIM", code="unknown_sim")
        keys = self.usable_keys(actor, sim, "psk")
        if not keys:
            raise NotFound("SIM has no usable PSK", code="unknown_sim")
        self.audit(actor, "psk.lookup", iccid=sim.iccid,
                   detail={"tags": [t for t, _ in keys]})
        return {"identity": identity_hex, "iccid": sim.iccid,
                "keys": [{"tag": t, "psk": k.hex()} for t, k in keys]}

    def psk_changes(self, after: int) -> dict[str, Any]:
        rows = list(self.s.execute(
            select(PskChange.id, PskChange.identity_hex).where(PskChange.id > after)
            .order_by(PskChange.id).limit(PSK_CHANGES_PAGE)))
        if rows:
            last = rows[-1][0]
        else:
            # Nothing new: stay at `after`. (Not max(id): under READ COMMITTED that second
            # statement may see a commit the first one did not, and the gateway would skip
            # it.) Only a feed behind `after` (database replaced) moves the gateway back.
            last = min(after, self.s.scalar(select(func.max(PskChange.id))) or 0)
        return {"last": last, "identities": sorted({h for _, h in rows})}

    def gateway_event(
        self, actor: Actor, kind: object, identity: object, detail: object
    ) -> None:
        if not isinstance(kind, str) or not _EVENT_KIND.fullmatch(kind):
            raise BadRequest("kind must match [a-z][a-z0-9_]{0,63}")
        ident = parse_identity_hex(identity) if identity is not None else None
        if detail is None:
            detail = {}
        if not isinstance(detail, dict):
            raise BadRequest("detail must be an object")
        iccid = iccid_from_hex(ident) if ident else None
        severity = "alert" if kind in ("iccid_mismatch", "binder_failure", "replay") else "info"
        self.audit(actor, f"gateway.{kind}", iccid=iccid, severity=severity,
                   detail={"identity": ident, **detail})

    def _device_request(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str,
    ) -> Sim:
        """Common checks of the device endpoints (the gateway vouches for ``identity_hex``)."""
        if iccid_hex != identity_hex:
            self.audit(actor, "device.iccid_mismatch", severity="alert", device_id=device_id,
                       keep_on_error=True,
                       iccid=iccid_from_hex(identity_hex),
                       detail={"identity": identity_hex, "iccid_param": iccid_hex})
            raise Forbidden("iccid does not match the verified PSK identity",
                            code="iccid_mismatch")
        sim = self.s.scalar(select(Sim).where(Sim.identity_hex == identity_hex)
                            .with_for_update())
        if sim is None:
            raise NotFound("unknown SIM", code="unknown_sim")
        if sim.state != "active":
            self.audit(actor, "device.refused", iccid=sim.iccid, device_id=device_id,
                       keep_on_error=True,
                       detail={"reason": "suspended"})
            raise Forbidden("SIM is suspended", code="sim_suspended")
        if sim.bind_first_device:
            if sim.bound_device_id is None:
                sim.bound_device_id = device_id
                self.audit(actor, "sim.bind", iccid=sim.iccid, device_id=device_id)
            elif sim.bound_device_id != device_id:
                self.audit(actor, "sim.moved", iccid=sim.iccid, device_id=device_id,
                           severity="alert", keep_on_error=True,
                           detail={"bound_device_id": sim.bound_device_id, "refused": True})
                raise Forbidden("SIM is bound to another device", code="device_mismatch")
        elif sim.last_device_id is not None and sim.last_device_id != device_id:
            self.audit(actor, "sim.moved", iccid=sim.iccid, device_id=device_id,
                       severity="alert",
                       detail={"previous_device_id": sim.last_device_id, "refused": False})
        sim.last_device_id = device_id
        return sim

    def _before_key_use(self, identity_hex: str, key_tag: str) -> None:
        """Lock order: a request that will confirm an OTA rotation (and retire the old key,
        a feed change) takes the feed lock before the SIM row."""
        from ._rotation import confirmation_due

        if confirmation_due(self, identity_hex, key_tag) and hasattr(self, "_lock_feed"):
            self._lock_feed()

    def _note_key_use(self, actor: Actor, sim: Sim, key_tag: str) -> None:
        """The gateway verified ``key_tag``: a new key in use confirms an OTA rotation."""
        from ._rotation import note_key_use

        note_key_use(self, actor, sim, key_tag)

    def deliver_config(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str, key_tag: str,
    ) -> tuple[bytes, int, str] | None:
        """The body for a device: its own configuration, else the SIM's default.

        Returns None when neither exists (the binding and the miss are still recorded).
        """
        if iccid_hex == identity_hex:
            fast = self._deliver_fast(actor, identity_hex, device_id, key_tag)
            if fast is not _FULL_PATH:
                return fast  # type: ignore[return-value]
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._note_key_use(actor, sim, key_tag)
        for device_key in (device_id, DEFAULT_DEVICE):
            slot = self._slot(sim, device_key)
            cur = self._current(slot) if slot else None
            if cur is not None and cur.body is not None:
                self.audit(actor, "config.deliver", iccid=sim.iccid, device_id=device_id,
                           version=cur.version,
                           detail={"slot": device_key, "key_tag": key_tag,
                                   "bytes": len(cur.body)})
                self._note_delivery(sim.id, device_id, Resolved(
                    "default" if device_key == DEFAULT_DEVICE else "device", cur.version,
                    cur.body))
                return cur.body, cur.version, device_key
        return self._deliver_by_label(actor, sim.id, sim.iccid, sim.labels_json, device_id,
                                      key_tag, self.audit)

    def _deliver_fast(
        self, actor: Actor, identity_hex: str, device_id: str, key_tag: str,
    ) -> tuple[bytes, int, str] | None | object:
        """The common delivery in one SELECT (+ one UPDATE the first time) + the audit row:
        an active SIM in the device it was last seen in (or seen for the first time,
        unbound), no rotation to confirm. Whatever else (unknown or suspended SIM, binding,
        a move, a rotation) returns ``_FULL_PATH``: the caller runs the locking path, which
        records the alerts. Same answers and audit records as the full path."""
        conn = self.s.connection()
        rows = conn.execute(_device_lookup(), {
            "ident": identity_hex, "device": device_id, "default": DEFAULT_DEVICE,
            "tag": key_tag}).all()
        if not rows:
            return _FULL_PATH
        first = rows[0]
        if first.state != "active" or first.rotation:
            return _FULL_PATH
        if first.bind_first_device:
            if first.bound_device_id != device_id or first.last_device_id != device_id:
                return _FULL_PATH
        elif first.last_device_id != device_id:
            if first.last_device_id is not None:
                return _FULL_PATH  # a move: alerted by the full path
            done = conn.execute(_SET_FIRST_DEVICE, {"sim_id": first.id, "device": device_id})
            if done.rowcount != 1:
                return _FULL_PATH
        slots = {r.device_key: r for r in rows if r.device_key is not None}
        for device_key in (device_id, DEFAULT_DEVICE):
            r = slots.get(device_key)
            if r is not None and r.body is not None:
                self.audit_now(actor, "config.deliver", iccid=first.iccid, device_id=device_id,
                               version=r.version,
                               detail={"slot": device_key, "key_tag": key_tag,
                                       "bytes": len(r.body)})
                self._note_delivery(first.id, device_id, Resolved(
                    "default" if device_key == DEFAULT_DEVICE else "device", r.version,
                    bytes(r.body)))
                return bytes(r.body), r.version, device_key
        labels_json = conn.execute(select(Sim.labels_json).where(Sim.id == first.id)).scalar()
        return self._deliver_by_label(actor, first.id, first.iccid, labels_json or "{}",
                                      device_id, key_tag, self.audit_now)

    def _note_delivery(self, sim_id: int, device_id: str, delivered: Resolved | None) -> None:
        note_delivery(self.s.connection(), self.now_ms, sim_id, device_id, delivered)

    def _deliver_by_label(
        self, actor: Actor, sim_id: int, iccid: str, labels_json: str, device_id: str,
        key_tag: str, audit: Any,
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
        """A device's report (``_reports``), refused like any device request the gateway
        did not vouch for (ICCID mismatch, suspended SIM, another bound device)."""
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._note_key_use(actor, sim, key_tag)
        Devices(self.s, self.now_ms, self.audit).record_report(actor, sim, device_id, key_tag,
                                                               report)

    def store_telemetry(
        self, actor: Actor, identity_hex: str, iccid_hex: str, device_id: str, key_tag: str,
        body: bytes, keep: int,
    ) -> None:
        if len(body) > TELEMETRY_BODY_MAX:
            raise BadRequest("telemetry too large")  # the HTTP layer answers 413 before this
        self._before_key_use(identity_hex, key_tag)
        sim = self._device_request(actor, identity_hex, iccid_hex, device_id)
        self._note_key_use(actor, sim, key_tag)
        self.s.add(Telemetry(sim_id=sim.id, device_id=device_id, received_ms=self.now_ms,
                             gateway=actor.gateway or "", body=body))
        self.s.flush()
        # Bounded storage: keep the newest `keep` records of this SIM.
        cutoff = self.s.scalar(select(Telemetry.id).where(Telemetry.sim_id == sim.id)
                               .order_by(Telemetry.id.desc()).offset(keep).limit(1))
        if cutoff is not None:
            self.s.execute(delete(Telemetry).where(Telemetry.sim_id == sim.id,
                                                   Telemetry.id <= cutoff))
        self.audit(actor, "telemetry.store", iccid=sim.iccid, device_id=device_id,
                   detail={"bytes": len(body), "key_tag": key_tag})

    def list_telemetry(self, iccid: str, limit: int) -> list[dict[str, Any]]:
        sim = self._sim(iccid)
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
