"""SIMs and their keys: registration, state, labels, binding; PSKs and OTA keys sealed at rest.

Every writer validates all of its input before it writes anything and locks the SIM row it
changes (``FOR UPDATE`` on PostgreSQL; SQLite write transactions are serialized by
``BEGIN IMMEDIATE``). A change that alters the PSKs a gateway gets takes the PSK feed lock
before the SIM row (lock order: feed, then SIM rows in ICCID order) and notes the change.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..iccid import iccid_to_hex
from ._audit import Actor
from ._context import StoreContext
from ._errors import BadRequest, Conflict, NotFound
from ._keys import KeyIntegrityError
from ._models import Sim, SimKey, SimLabel
from ._rotation_rules import RotationRules
from ._schemas import KEY_KINDS, KEY_LENGTHS, KEY_STATES, SIM_STATES

__all__ = ["Keys", "Sims", "key_view", "sim_ids", "sim_keys", "sim_row", "sim_view"]


def sim_view(sim: Sim, keys: Sequence[SimKey] = ()) -> dict[str, Any]:
    """A SIM as the API shows it, with its keys (never key material)."""
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
    """What identifies a key (kind, tag, state, master key version): never the
    key material."""
    # Never the key material: only what identifies it.
    return {"kind": key.kind, "tag": key.tag, "state": key.state,
            "master_version": key.master_version, "created_ms": key.created_ms,
            "created_by": key.created_by}


def sim_row(session: Session, iccid: str, *, lock: bool = False) -> Sim:
    """The registered SIM (row-locked with ``lock``). Raises NotFound (unknown_sim)."""
    q = select(Sim).where(Sim.iccid == iccid)
    if lock:
        q = q.with_for_update()
    sim = session.scalar(q)
    if sim is None:
        raise NotFound(f"SIM {iccid} is not registered", code="unknown_sim")
    return sim


def sim_keys(session: Session, sim: Sim) -> list[SimKey]:
    """Every key row of the SIM, by kind then age."""
    return list(session.scalars(
        select(SimKey).where(SimKey.sim_id == sim.id).order_by(SimKey.kind, SimKey.id)
    ))


def sim_ids(ctx: StoreContext, iccids: Sequence[str], *,
            lock: bool) -> dict[str, tuple[int, str]]:
    """``{iccid: (id, identity_hex)}`` of the registered ones (locked in ICCID order): the
    bulk imports' lookup, one statement per chunk."""
    q = (select(Sim.iccid, Sim.id, Sim.identity_hex).where(Sim.iccid.in_(iccids))
         .order_by(Sim.iccid))
    if lock and ctx.postgres:
        q = q.with_for_update()
    return {i: (sid, ident) for i, sid, ident in ctx.s.connection().execute(q)}


class Sims:
    """Register, read, change and delete SIMs."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self.s = ctx.s

    def row(self, iccid: str, *, lock: bool = False) -> Sim:
        """The SIM's row for another capability (see :func:`sim_row`)."""
        return sim_row(self.s, iccid, lock=lock)

    def get(self, iccid: str) -> dict[str, Any]:
        """The SIM with its keys (never key material). Raises NotFound."""
        sim = sim_row(self.s, iccid)
        return sim_view(sim, sim_keys(self.s, sim))

    def find(
        self, *, state: str | None, label: tuple[str, str] | None, after: str | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """A page of SIMs in ICCID order after ``after`` (the cursor), filtered by state and
        one ``(key, value)`` label. A label filter reads the ``sim_label`` index (kept by
        triggers from ``labels_json``), never the JSON of every SIM row: at a million SIMs a
        label page costs what a state page does."""
        q = select(Sim).order_by(Sim.iccid)
        if label:
            q = q.join(SimLabel, SimLabel.sim_id == Sim.id).where(
                SimLabel.key == label[0], SimLabel.value == label[1])
        if state:
            q = q.where(Sim.state == state)
        if after:
            q = q.where(Sim.iccid > after)
        return [sim_view(sim, sim_keys(self.s, sim)) for sim in self.s.scalars(q.limit(limit))]

    def create(
        self, actor: Actor, iccid: str, *, state: str = "active",
        labels: dict[str, str] | None = None, bind_first_device: bool = False,
    ) -> Sim:
        """Register a SIM (no key yet: :meth:`Keys.add` adds them in the same transaction).

        Raises:
            BadRequest: unknown state. Conflict: ``sim_exists``.
        """
        if state not in SIM_STATES:
            raise BadRequest(f"state must be one of {', '.join(SIM_STATES)}")
        if self.s.scalar(select(Sim.id).where(Sim.iccid == iccid)) is not None:
            raise Conflict(f"SIM {iccid} is already registered", code="sim_exists")
        now_ms = self._ctx.now_ms
        sim = Sim(iccid=iccid, identity_hex=iccid_to_hex(iccid, check_luhn=False), state=state,
                  labels_json=json.dumps(labels or {}, sort_keys=True),
                  bind_first_device=bind_first_device, bound_device_id=None,
                  last_device_id=None, created_ms=now_ms, updated_ms=now_ms)
        self.s.add(sim)
        self.s.flush()
        self._ctx.audit.record(actor, "sim.create", iccid=iccid,
                               detail={"state": state, "labels": labels or {},
                                       "bind_first_device": bind_first_device})
        return sim

    def update(
        self, actor: Actor, iccid: str, *, state: str | None = None,
        labels: dict[str, str] | None = None, bind_first_device: bool | None = None,
        clear_binding: bool = False,
    ) -> dict[str, Any]:
        """Change what is given (None: unchanged); the audit event lists what changed. A
        state change is a feed change: a suspended SIM gets no PSK."""
        if state is not None and state not in SIM_STATES:
            raise BadRequest(f"state must be one of {', '.join(SIM_STATES)}")
        feed = self._ctx.feed
        if state is not None:
            feed.lock()
        sim = sim_row(self.s, iccid, lock=True)
        changes: dict[str, Any] = {}
        if state is not None and state != sim.state:
            changes["state"] = [sim.state, state]
            sim.state = state
            feed.note(sim.identity_hex)  # suspended SIMs get no PSK
        if labels is not None:
            changes["labels"] = labels
            sim.labels_json = json.dumps(labels, sort_keys=True)
        if bind_first_device is not None and bind_first_device != sim.bind_first_device:
            changes["bind_first_device"] = bind_first_device
            sim.bind_first_device = bind_first_device
        if clear_binding and sim.bound_device_id is not None:
            changes["bound_device_id"] = [sim.bound_device_id, None]
            sim.bound_device_id = None
        sim.updated_ms = self._ctx.now_ms
        self._ctx.audit.record(actor, "sim.update", iccid=iccid, detail=changes)
        return sim_view(sim, sim_keys(self.s, sim))

    def delete(self, actor: Actor, iccid: str) -> None:
        """Delete the SIM with its keys, configurations and telemetry (cascade); the feed
        tells the gateways to forget its PSKs. Raises NotFound."""
        self._ctx.feed.lock()
        sim = sim_row(self.s, iccid, lock=True)
        self._ctx.feed.note(sim.identity_hex)
        self.s.delete(sim)
        self._ctx.audit.record(actor, "sim.delete", iccid=iccid)


class Keys:
    """A SIM's keys (PSKs, OTA KIc/KID), sealed under the master keyring at rest."""

    def __init__(self, ctx: StoreContext, rules: RotationRules) -> None:
        self._ctx = ctx
        self._rules = rules
        self.s = ctx.s

    def add(
        self, actor: Actor, iccid: str, kind: str, *, key: bytes | None, tag: str | None,
        sim: Sim | None = None,
    ) -> tuple[SimKey, bytes | None]:
        """Seal and store a key (generated when ``key`` is None; the tag defaults to one
        above the SIM's numeric tags of that kind). Returns (row, generated key or None):
        a generated key is shown once, to the caller, and never again.

        Raises:
            BadRequest: unknown kind. Conflict: ``key_exists`` (the tag is taken).
            NotFound: unknown SIM.
        """
        if kind not in KEY_KINDS:
            raise BadRequest(f"key kind must be one of {', '.join(KEY_KINDS)}")
        ctx = self._ctx
        if kind == "psk":
            ctx.feed.lock()
        sim = sim or sim_row(self.s, iccid, lock=True)
        existing = {k.tag for k in sim_keys(self.s, sim) if k.kind == kind}
        if tag is None:
            numeric = [int(t) for t in existing if t.isdigit()]
            tag = str(max(numeric, default=0) + 1)
        if tag in existing:
            raise Conflict(f"SIM {iccid} already has a {kind} with tag {tag!r}",
                           code="key_exists")
        generated = None
        if key is None:
            key = generated = secrets.token_bytes(KEY_LENGTHS[kind][0])
        master_version, sealed = ctx.keyring.seal(key, iccid=iccid, kind=kind, tag=tag)
        row = SimKey(sim_id=sim.id, kind=kind, tag=tag, state="active",
                     master_version=master_version, sealed=sealed, created_ms=ctx.now_ms,
                     created_by=actor.client_id)
        self.s.add(row)
        self.s.flush()
        if kind == "psk":
            ctx.feed.note(sim.identity_hex)
        ctx.audit.record(actor, "key.add", iccid=iccid,
                         detail={"kind": kind, "tag": tag, "generated": generated is not None,
                                 "master_version": master_version})
        return row, generated

    def set_state(self, actor: Actor, iccid: str, kind: str, tag: str, state: str) -> SimKey:
        """Retire or reactivate a key; a key an open rotation depends on is never retired
        before the SIM confirmed the new one.

        Raises:
            BadRequest: unknown state. NotFound: no such SIM or key.
            Conflict: ``rotation_in_progress``.
        """
        if state not in KEY_STATES:
            raise BadRequest(f"key state must be one of {', '.join(KEY_STATES)}")
        ctx = self._ctx
        if kind == "psk":
            ctx.feed.lock()
        sim = sim_row(self.s, iccid, lock=True)
        row = self.row(sim, kind, tag)
        if state == "retired" and row.state != state:
            self._rules.check_key_change(sim, kind, tag)  # never before the SIM confirmed
        if row.state != state:
            row.state = state
            if kind == "psk":
                ctx.feed.note(sim.identity_hex)
        ctx.audit.record(actor, "key.state", iccid=iccid,
                         detail={"kind": kind, "tag": tag, "state": state})
        return row

    def delete(self, actor: Actor, iccid: str, kind: str, tag: str) -> None:
        """Delete a key for good (its sealed bytes too).

        Raises:
            NotFound: no such SIM or key. Conflict: an open rotation keeps its keys.
        """
        ctx = self._ctx
        if kind == "psk":
            ctx.feed.lock()
        sim = sim_row(self.s, iccid, lock=True)
        row = self.row(sim, kind, tag)
        self._rules.check_key_change(sim, kind, tag)  # an open rotation keeps its keys
        self.s.delete(row)
        if kind == "psk":
            ctx.feed.note(sim.identity_hex)
        ctx.audit.record(actor, "key.delete", iccid=iccid, detail={"kind": kind, "tag": tag})

    def row(self, sim: Sim, kind: str, tag: str) -> SimKey:
        """The key row. Raises NotFound (unknown_key)."""
        row = self.s.scalar(select(SimKey).where(
            SimKey.sim_id == sim.id, SimKey.kind == kind, SimKey.tag == tag))
        if row is None:
            raise NotFound(f"SIM {sim.iccid} has no {kind} with tag {tag!r}", code="unknown_key")
        return row

    def usable(self, actor: Actor, sim: Sim, kind: str) -> list[tuple[str, bytes]]:
        """Active keys of ``kind`` as ``(tag, key)``, opened, oldest first. A key that fails
        to open (tampered, wrong master key) is skipped and alerted, never served."""
        ctx = self._ctx
        out: list[tuple[str, bytes]] = []
        for row in sim_keys(self.s, sim):
            if row.kind != kind or row.state != "active":
                continue
            try:
                key = ctx.keyring.open(row.sealed, iccid=sim.iccid, kind=row.kind,
                                       tag=row.tag, master_version=row.master_version)
            except KeyIntegrityError as exc:
                ctx.audit.record(actor, "key.integrity_failure", iccid=sim.iccid,
                                 severity="alert", keep_on_error=True,
                                 detail={"kind": row.kind, "tag": row.tag, "reason": str(exc)})
                continue
            out.append((row.tag, key))
        return out
