"""The rules an open OTA PSK rotation imposes on the rest of the store (issue 8).

Kept below both the store and the rotation engine (``_rotation.py``): the keys refuse a
change a rotation depends on, and device requests confirm a rotation, without the store
knowing how rotations are started or sent.

- A key an open rotation depends on (its old and new PSK, the OTA keys) is neither retired nor
  deleted (``check_key_change``).
- The first device request that used the new key's tag confirms the rotation and retires the
  old key at once (``note_key_use``): the only path to retirement.
"""

from __future__ import annotations

import json

from sqlalchemy import select

from ztp.ota import Rotation, RotationState

from ._audit import Actor
from ._context import StoreContext
from ._errors import Conflict
from ._models import Sim, SimKey
from ._ota_models import OtaRotation

__all__ = ["OPEN_STATES", "RotationRules", "load_rotation", "numeric_tag", "save_rotation"]

OPEN_STATES = (RotationState.PENDING.value, RotationState.DELIVERED.value,
               RotationState.CONFIRMED.value, RotationState.FAILED.value)


def numeric_tag(tag: str) -> int | None:
    """The key version a tag names (rotations only use tags "1".."255"), else None."""
    return int(tag) if tag.isascii() and tag.isdigit() and len(tag) <= 3 else None


def load_rotation(row: OtaRotation) -> Rotation:
    """The state machine stored in ``row``."""
    return Rotation.from_dict(json.loads(row.record_json))


def save_rotation(row: OtaRotation, rot: Rotation, now_ms: int) -> None:
    """Store ``rot`` in ``row`` with its state and next due time (the indexed columns)."""
    row.state = rot.state.value
    row.record_json = json.dumps(rot.to_dict(), sort_keys=True)
    row.updated_ms = now_ms
    # Only a PENDING rotation is ever due; FAILED waits for an operator (retry_rotation makes
    # it PENDING again), every other state sends nothing.
    due = rot.timer() if row.state == RotationState.PENDING.value else None
    row.next_due_ms = due * 1000 if due is not None else None


class RotationRules:
    """The rotation rules on one transaction."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self.s = ctx.s

    def open_rotation(self, sim: Sim) -> OtaRotation | None:
        """The SIM's open rotation (at most one is open at a time), or None."""
        return self.s.scalar(select(OtaRotation).where(
            OtaRotation.sim_id == sim.id, OtaRotation.state.in_(OPEN_STATES))
            .order_by(OtaRotation.id.desc()).limit(1))

    def confirmation_due(self, identity_hex: str, key_tag: str) -> bool:
        """Would a request with ``key_tag`` confirm an open rotation of this SIM? (No lock:
        the caller takes the feed lock first if so, as retiring the old key is a feed
        change.)"""
        if not key_tag or numeric_tag(key_tag) is None:
            return False
        return self.s.scalar(
            select(OtaRotation.id).join(Sim, Sim.id == OtaRotation.sim_id)
            .where(Sim.identity_hex == identity_hex, OtaRotation.new_tag == key_tag,
                   OtaRotation.state.in_(OPEN_STATES)).limit(1)) is not None

    def check_key_change(self, sim: Sim, kind: str, tag: str) -> None:
        """Refuse to retire or delete a key an open rotation depends on (the old and new PSK,
        the OTA keys): the SIM could be locked out before it confirmed the new key.

        Raises:
            Conflict: ``rotation_in_progress``.
        """
        row = self.open_rotation(sim)
        if row is None:
            return
        if kind in ("kic", "kid") or tag in (row.old_tag, row.new_tag):
            raise Conflict(f"SIM {sim.iccid} has a {row.state} rotation ({row.old_tag} -> "
                           f"{row.new_tag}); its keys stay until the SIM confirmed the new one",
                           code="rotation_in_progress")

    def note_key_use(self, actor: Actor, sim: Sim, key_tag: str) -> None:
        """A device request through a gateway that verified ``key_tag``: the new key's tag
        confirms the open rotation, and the old key is retired now (never before)."""
        if not key_tag:
            return
        row = self.open_rotation(sim)
        if row is None or key_tag != row.new_tag:
            return
        ctx = self._ctx
        rot = load_rotation(row)
        now_s = ctx.now_ms // 1000
        was = rot.state.value
        rot.handshake(rot.new_key_version, now_s)
        ctx.audit.record(actor, "rotation.confirmed", iccid=sim.iccid,
                         detail={"batch": row.batch, "new_tag": row.new_tag, "was": was})
        old = self.s.scalar(select(SimKey).where(SimKey.sim_id == sim.id, SimKey.kind == "psk",
                                                 SimKey.tag == row.old_tag))
        rot.retire_old_key(now_s)  # CONFIRMED -> RETIRED: the only way to retire
        if old is not None and old.state != "retired":
            old.state = "retired"
            ctx.feed.note(sim.identity_hex)
        ctx.audit.record(actor, "rotation.retired", iccid=sim.iccid,
                         detail={"batch": row.batch, "old_tag": row.old_tag,
                                 "new_tag": row.new_tag})
        save_rotation(row, rot, ctx.now_ms)
