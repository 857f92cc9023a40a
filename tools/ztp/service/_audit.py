"""The audit log: who did what to which SIM, written in the request's own transaction.

Every change and every refusal that matters (alerts) is recorded here; ``ztp audit`` and
``GET /v1/audit`` read it back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from ._models import AuditEvent
from ._prepared import DriverTransaction, Prepared

__all__ = ["AUDIT_INSERT", "Actor", "AuditLog", "audit_row", "audit_view", "insert_audit_now"]

AUDIT_INSERT = AuditEvent.__table__.insert()  # Core statement of the imports
_AUDIT_COLUMNS = ("at_ms", "actor", "gateway", "action", "severity", "iccid", "device_id",
                  "version", "detail_json")
_AUDIT_PREPARED = Prepared(AUDIT_INSERT, _AUDIT_COLUMNS)  # the hot paths' (_prepared)


@dataclass(frozen=True)
class Actor:
    """Who does something, for the audit log: a client id and, for devices, the gateway."""

    client_id: str
    gateway: str | None = None


def audit_view(e: AuditEvent) -> dict[str, Any]:
    """One event as ``GET /v1/audit`` shows it."""
    return {"id": e.id, "at_ms": e.at_ms, "actor": e.actor, "gateway": e.gateway,
            "action": e.action, "severity": e.severity, "iccid": e.iccid,
            "device_id": e.device_id, "version": e.version,
            "detail": json.loads(e.detail_json)}


def audit_row(
    now_ms: int, actor: Actor, action: str, *, iccid: str | None = None,
    device_id: str | None = None, version: int | None = None, severity: str = "info",
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one event, for an INSERT or an ORM row: one place decides how
    an event is stored."""
    return {"at_ms": now_ms, "actor": actor.client_id, "gateway": actor.gateway,
            "action": action, "severity": severity, "iccid": iccid, "device_id": device_id,
            "version": version, "detail_json": json.dumps(detail or {}, sort_keys=True)}


def insert_audit_now(conn: Connection | DriverTransaction, now_ms: int, actor: Actor, action: str,
                     **fields: Any) -> None:
    """One audit event as one INSERT on ``conn``, in its transaction (the hot paths: no ORM
    unit of work, the statement prepared once: ``_prepared``)."""
    _AUDIT_PREPARED.run(conn, audit_row(now_ms, actor, action, **fields))


class AuditLog:
    """Audit events of one transaction (``now_ms`` from the injected clock)."""

    def __init__(self, session: Session, now_ms: int) -> None:
        self.s = session
        self.now_ms = now_ms
        self.kept: list[dict[str, Any]] = []

    def row(
        self, actor: Actor, action: str, *, iccid: str | None = None,
        device_id: str | None = None, version: int | None = None,
        severity: str = "info", detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """:func:`audit_row` at this transaction's ``now_ms`` (bulk INSERTs of the imports)."""
        return audit_row(self.now_ms, actor, action, iccid=iccid, device_id=device_id,
                         version=version, severity=severity, detail=detail)

    def record(
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
        """Record an audit event in this transaction: it commits or rolls back with the
        change it describes.

        ``keep_on_error``: the event also lands in :attr:`kept`, which the HTTP layer writes
        in a fresh transaction when the request fails (a refusal must stay on record even
        though the request's own changes are rolled back).
        """
        fields = self.row(actor, action, iccid=iccid, device_id=device_id, version=version,
                          severity=severity, detail=detail)
        self.s.add(AuditEvent(**fields))
        if keep_on_error:
            self.kept.append(fields)

    def record_now(
        self, actor: Actor, action: str, *, iccid: str | None = None,
        device_id: str | None = None, version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """:meth:`record` as one INSERT at once (no ORM unit of work): the hot paths, where
        a request costs one SELECT, this INSERT and the commit."""
        insert_audit_now(self.s.connection(), self.now_ms, actor, action, iccid=iccid,
                         device_id=device_id, version=version, detail=detail)

    def replay(self, kept: Sequence[dict[str, Any]]) -> None:
        """Write the :attr:`kept` events of a failed transaction into this one, so that a
        refused request's alerts survive its rollback."""
        for fields in kept:
            self.s.add(AuditEvent(**fields))

    def events(
        self, *, iccid: str | None, action: str | None, severity: str | None,
        after: int, limit: int,
    ) -> list[dict[str, Any]]:
        """Events after id ``after``, oldest first, filtered: a page of ``GET /v1/audit``
        (the id is the cursor, so a reader never misses or repeats one)."""
        q = select(AuditEvent).where(AuditEvent.id > after)
        if iccid:
            q = q.where(AuditEvent.iccid == iccid)
        if action:
            q = q.where(AuditEvent.action == action)
        if severity:
            q = q.where(AuditEvent.severity == severity)
        return [audit_view(e) for e in self.s.scalars(q.order_by(AuditEvent.id).limit(limit))]
