"""The PSK change feed: which SIM identities' PSKs changed, in commit order.

Gateways cache PSKs; they poll ``GET /v1/gateway/psk-changes?after=N`` and drop the cached
entries of the identities listed. Every change that alters what ``GET /v1/gateway/psks``
answers for a SIM (a PSK added, retired or deleted, the SIM suspended or deleted) notes the
identity here in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ._models import PskChange

__all__ = ["PSK_CHANGES_PAGE", "PskFeed"]

PSK_CHANGES_PAGE = 1000


class PskFeed:
    """The feed as seen by one transaction; holds whether this transaction has its lock."""

    def __init__(self, session: Session, now_ms: int, *, postgres: bool) -> None:
        self.s = session
        self.now_ms = now_ms
        self._postgres = postgres
        self._locked = False

    def lock(self) -> None:
        """Take the feed lock (PostgreSQL; SQLite writers are serialized anyway).

        Order the change feed by commit: ids are taken under this lock, which is held until
        commit, so a gateway reading ``after=N`` never misses a later-committed smaller id.
        Lock order, to rule out deadlocks: the feed first, then SIM rows in ICCID order.
        Every operation that may note a change takes it before it locks any SIM row.
        """
        if self._postgres and not self._locked:
            self.s.execute(text("LOCK TABLE psk_change IN SHARE ROW EXCLUSIVE MODE"))
        self._locked = True

    def note(self, identity_hex: str) -> None:
        """The PSKs of ``identity_hex`` changed: gateways must drop what they cached."""
        self.lock()
        self.s.add(PskChange(identity_hex=identity_hex, at_ms=self.now_ms))

    def changes(self, after: int) -> dict[str, Any]:
        """``{last, identities}``: the identities changed after id ``after`` (a page), and the
        id to ask after next time."""
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
