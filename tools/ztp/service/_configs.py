"""Per-device configurations: versioned, never rewritten, with a SIM-wide default.

A configuration lives in a slot (SIM, device id or ``default``); every change is a new
version (a deletion too: a version without a body), so the history is complete and a rollback
is one more version. Writers lock the SIM row, so a slot's versions are gap-free and ordered
under parallel writers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ._audit import Actor
from ._context import StoreContext
from ._errors import BadRequest, Conflict, NotFound
from ._models import ConfigSlot, ConfigVersion, Sim
from ._schemas import parse_body
from ._sims import sim_row

__all__ = ["Configs", "json_required", "version_view"]


def version_view(v: ConfigVersion) -> dict[str, Any]:
    """One version as the API shows it (``deleted``: a deletion has no body)."""
    return {
        "version": v.version,
        "deleted": v.body is None,
        "body": v.body.decode("utf-8") if v.body is not None else None,
        "created_ms": v.created_ms,
        "created_by": v.created_by,
        "comment": v.comment,
    }


def json_required(detail: str) -> Conflict:
    """A body that is not JSON for a configuration that requires JSON (require_json was set
    on it earlier and sticks): the request conflicts with the resource, 409."""
    return Conflict(f"{detail} (require_json is set on this configuration)",
                    code="invalid_json")


class Configs:
    """Set, read, list, roll back and export configurations."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._audit = ctx.audit
        self.s = ctx.s

    def slot(self, sim: Sim, device_key: str) -> ConfigSlot | None:
        """The (SIM, device) configuration slot, or None if it never had one."""
        return self.s.scalar(select(ConfigSlot).where(
            ConfigSlot.sim_id == sim.id, ConfigSlot.device_key == device_key))

    def current(self, slot: ConfigSlot) -> ConfigVersion | None:
        """The slot's current version (its ``body`` is None once deleted)."""
        return self.s.scalar(select(ConfigVersion).where(
            ConfigVersion.slot_id == slot.id, ConfigVersion.version == slot.current_version))

    def set(
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
        sim = sim or sim_row(self.s, iccid, lock=True)
        slot = self.slot(sim, device_key)
        need_json = bool(require_json if require_json is not None
                         else (slot.require_json if slot else False))
        try:
            raw = None if body is None else parse_body(body, require_json=need_json)
        except BadRequest as exc:
            if require_json is None and need_json:  # the configuration's own requirement
                raise json_required(exc.detail) from None
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
        elif raw is None and (cur := self.current(slot)) is not None and cur.body is None:
            raise NotFound(f"configuration of SIM {iccid} device {device_key} is already "
                           "deleted", code="unknown_config")
        slot.require_json = need_json
        slot.current_version += 1
        row = ConfigVersion(slot_id=slot.id, version=slot.current_version, body=raw,
                            created_ms=self._ctx.now_ms, created_by=actor.client_id,
                            comment=comment)
        self.s.add(row)
        self.s.flush()
        self._audit.record(actor, action if raw is not None else "config.delete", iccid=iccid,
                           device_id=device_key, version=row.version,
                           detail={"bytes": len(raw) if raw is not None else None,
                                   "comment": comment})
        return {"iccid": iccid, "device_id": device_key, "require_json": need_json,
                **version_view(row)}

    def get(self, iccid: str, device_key: str) -> dict[str, Any]:
        """The current configuration of (SIM, device). Raises NotFound
        (unknown_config: none, or deleted)."""
        sim = sim_row(self.s, iccid)
        slot = self.slot(sim, device_key)
        cur = self.current(slot) if slot else None
        if slot is None or cur is None or cur.body is None:
            raise NotFound(f"no configuration for SIM {iccid} device {device_key}",
                           code="unknown_config")
        return {"iccid": iccid, "device_id": device_key, "require_json": slot.require_json,
                **version_view(cur)}

    def list_current(self, iccid: str) -> list[dict[str, Any]]:
        """The SIM's configurations that have a body now, by device (deleted ones
        are left out; their history stays). Raises NotFound."""
        sim = sim_row(self.s, iccid)
        out = []
        for slot in self.s.scalars(select(ConfigSlot).where(ConfigSlot.sim_id == sim.id)
                                   .order_by(ConfigSlot.device_key)):
            cur = self.current(slot)
            if cur is not None and cur.body is not None:
                out.append({"iccid": iccid, "device_id": slot.device_key,
                            "require_json": slot.require_json, **version_view(cur)})
        return out

    def history(self, iccid: str, device_key: str, limit: int) -> list[dict[str, Any]]:
        """The slot's versions, newest first (deletions included): what
        :meth:`rollback` can go back to. Raises NotFound."""
        sim = sim_row(self.s, iccid)
        slot = self.slot(sim, device_key)
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
        sim = sim_row(self.s, iccid, lock=True)
        slot = self.slot(sim, device_key)
        old = None
        if slot is not None:
            old = self.s.scalar(select(ConfigVersion).where(
                ConfigVersion.slot_id == slot.id, ConfigVersion.version == version))
        if old is None:
            raise NotFound(f"SIM {iccid} device {device_key} has no version {version}",
                           code="unknown_version")
        if old.body is None:
            raise BadRequest(f"version {version} is a deletion; nothing to roll back to")
        return self.set(
            actor, iccid, device_key, old.body.decode("utf-8"),
            comment=comment or f"rollback to version {version}", action="config.rollback",
            sim=sim,
        ) | {"rolled_back_to": version}

    def export(self) -> list[dict[str, Any]]:
        """Every current configuration (with a body), by ICCID and device: the
        input of :meth:`Imports.configs` on another service."""
        q = (select(Sim.iccid, ConfigSlot, ConfigVersion)
             .join(ConfigSlot, ConfigSlot.sim_id == Sim.id)
             .join(ConfigVersion, (ConfigVersion.slot_id == ConfigSlot.id)
                   & (ConfigVersion.version == ConfigSlot.current_version))
             .where(ConfigVersion.body.is_not(None))
             .order_by(Sim.iccid, ConfigSlot.device_key))
        return [{"iccid": iccid, "device_id": slot.device_key, "body": v.body.decode("utf-8"),
                 "require_json": slot.require_json, "version": v.version}
                for iccid, slot, v in self.s.execute(q)]
