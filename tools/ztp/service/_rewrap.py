"""Master key rotation: re-seal every stored key under the current master key version."""

from __future__ import annotations

import json

from sqlalchemy import select

from ._db import Database
from ._keys import MasterKeyring
from ._models import AuditEvent, Sim, SimKey

__all__ = ["rewrap"]


def rewrap(db: Database, keyring: MasterKeyring, now_ms: int = 0) -> int:
    """Re-seal keys not yet under ``keyring.current_version``; one transaction, all or none.

    Returns:
        The number of keys re-sealed.

    Raises:
        KeyIntegrityError: a stored key does not open (nothing is changed then).
    """
    current = keyring.current_version
    n = 0
    with db.write() as session:
        rows = session.execute(
            select(SimKey, Sim.iccid).join(Sim, Sim.id == SimKey.sim_id)
            .where(SimKey.master_version != current)
        ).all()
        for key_row, iccid in rows:
            key = keyring.open(key_row.sealed, iccid=iccid, kind=key_row.kind, tag=key_row.tag,
                               master_version=key_row.master_version)
            key_row.master_version, key_row.sealed = keyring.seal(
                key, iccid=iccid, kind=key_row.kind, tag=key_row.tag)
            n += 1
        session.add(AuditEvent(at_ms=now_ms, actor="ztp service rewrap", gateway=None,
                               action="key.rewrap", severity="info", iccid=None,
                               device_id=None, version=current,
                               detail_json=json.dumps({"keys": n})))
    return n
