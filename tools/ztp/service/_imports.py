"""Bulk imports, all or nothing: a vendor key file of SIMs and PSKs, many configurations.

Every row is validated before anything is written; an error names its row. Rows are then
written in chunks of ``IMPORT_CHUNK`` (a few executemany statements each) inside the one
transaction, SIM rows locked in ICCID order (no deadlock between two imports). Same rows and
audit records as the one-by-one operations.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from ..iccid import iccid_to_hex
from ._audit import AUDIT_INSERT, Actor
from ._configs import json_required
from ._context import StoreContext
from ._errors import BadRequest, Conflict, NotFound
from ._models import ConfigSlot, ConfigVersion, PskChange, Sim, SimKey
from ._schemas import (
    DEFAULT_DEVICE,
    check_fields,
    parse_body,
    parse_bool,
    parse_comment,
    parse_device_id,
    parse_iccid,
    parse_key_hex,
    parse_labels,
    parse_tag,
)
from ._sims import sim_ids

__all__ = ["IMPORT_CHUNK", "IMPORT_CONFLICTS_SHOWN", "Imports"]

IMPORT_CHUNK = 5000  # rows per round of bulk statements inside one import transaction
IMPORT_CONFLICTS_SHOWN = 20  # clashing rows named in a key_exists answer (then a count)
SIM_ROW_FIELDS = frozenset({"iccid", "psk", "tag", "labels", "kic", "kid"})
CONFIG_ROW_FIELDS = frozenset({"iccid", "device_id", "body", "require_json", "comment"})


class Imports:
    """The two bulk imports of one transaction."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._audit = ctx.audit
        self.s = ctx.s

    def sims(
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
                check_fields(row, SIM_ROW_FIELDS, nulls=True)  # as CSV rows: "" or null
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
        self._ctx.feed.lock()
        self.s.flush()  # anything pending goes before our Core statements
        # SIM rows are locked in ICCID order (see PskFeed.lock), chunk by chunk; rows keep
        # their numbers. Each chunk is a few statements (executemany), in this transaction.
        items = sorted(parsed, key=lambda r: (r[1], r[0]))
        conflicts: list[tuple[int, str]] = []  # every clashing row, so one fix fixes all
        for start in range(0, len(items), IMPORT_CHUNK):
            c, a, u = self._sims_chunk(actor, items[start:start + IMPORT_CHUNK],
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
        self._audit.record(actor, "sim.import", detail={"created": created, "keys_added": added,
                                                        "unchanged": unchanged})
        return {"sims_created": created, "psks_added": added, "unchanged": unchanged}


    def _sims_chunk(
        self, actor: Actor,
        items: Sequence[tuple[int, str, bytes, str | None, dict[str, str], dict[str, bytes]]],
        conflicts: list[tuple[int, str]],
    ) -> tuple[int, int, int]:
        """Insert one round of rows; returns (SIMs created, PSKs added, PSKs unchanged).
        Rows whose tag clashes go to ``conflicts``; once there is one, nothing is inserted
        (the caller raises, and the transaction rolls back)."""
        conn = self.s.connection()
        iccids = sorted({it[1] for it in items})
        known = sim_ids(self._ctx, iccids, lock=True)
        new_sims: dict[str, dict[str, Any]] = {}
        for _n, iccid, _psk, _tag, labels, _ota in items:
            if iccid not in known and iccid not in new_sims:
                new_sims[iccid] = dict(
                    iccid=iccid, identity_hex=iccid_to_hex(iccid, check_luhn=False),
                    state="active", labels_json=json.dumps(labels, sort_keys=True),
                    bind_first_device=False, bound_device_id=None, last_device_id=None,
                    created_ms=self._ctx.now_ms, updated_ms=self._ctx.now_ms)
        audit: list[dict[str, Any]] = []
        if new_sims:
            conn.execute(Sim.__table__.insert(), list(new_sims.values()))
            for iccid, row in new_sims.items():
                audit.append(self._audit.row(
                    actor, "sim.create", iccid=iccid,
                    detail={"state": "active", "labels": json.loads(row["labels_json"]),
                            "bind_first_device": False}))
            known = sim_ids(self._ctx, iccids, lock=False)
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
            old = self._ctx.keyring.open(stored[0], iccid=iccid, kind=kind, tag=tag,
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
                master_version, sealed = self._ctx.keyring.seal(key, iccid=iccid, kind=kind,
                                                                tag=key_tag)
                keys.append(dict(sim_id=sim_id, kind=kind, tag=key_tag, state="active",
                                 master_version=master_version, sealed=sealed,
                                 created_ms=self._ctx.now_ms, created_by=actor.client_id))
                if kind == "psk":
                    feed.append(dict(identity_hex=identity_hex, at_ms=self._ctx.now_ms))
                audit.append(self._audit.row(
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
            conn.execute(AUDIT_INSERT, audit)
        return len(new_sims), len(feed), unchanged

    def configs(self, actor: Actor, rows: Iterable[object]) -> dict[str, int]:
        """Set many configurations at once, all or nothing (``{iccid, device_id, body}``)."""
        items: list[tuple[int, str, str, str, bool | None, str]] = []
        seen: set[tuple[str, str]] = set()
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                raise BadRequest(f"row {n}: must be an object")
            try:
                check_fields(row, CONFIG_ROW_FIELDS, nulls=False)
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
            self._configs_chunk(actor, ordered[start:start + IMPORT_CHUNK])
        return {"imported": len(items)}

    def _configs_chunk(
        self, actor: Actor, items: Sequence[tuple[int, str, str, str, bool | None, str]],
    ) -> None:
        conn = self.s.connection()
        known = sim_ids(self._ctx, sorted({it[1] for it in items}), lock=True)
        for n, iccid, *_ in items:
            if iccid not in known:
                raise NotFound(f"row {n}: SIM {iccid} is not registered", code="unknown_sim")
        slot_t = ConfigSlot.__table__
        sim_pks = sorted({sid for sid, _ in known.values()})
        slots = {(sid, dev): (slot_id, cur, rj) for slot_id, sid, dev, cur, rj in conn.execute(
            select(ConfigSlot.id, ConfigSlot.sim_id, ConfigSlot.device_key,
                   ConfigSlot.current_version, ConfigSlot.require_json)
            .where(ConfigSlot.sim_id.in_(sim_pks)))}
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
                    raise json_required(f"row {n}: {exc.detail}") from None
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
                                 body=raw, created_ms=self._ctx.now_ms,
                                 created_by=actor.client_id, comment=comment))
            audit.append(self._audit.row(actor, "config.import", iccid=iccid,
                                         device_id=device, version=version,
                                         detail={"bytes": len(raw), "comment": comment}))
        conn.execute(ConfigVersion.__table__.insert(), versions)
        conn.execute(AUDIT_INSERT, audit)
