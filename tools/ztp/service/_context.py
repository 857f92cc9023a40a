"""What every capability of the store shares within one transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from ._audit import AuditLog
from ._keys import MasterKeyring
from ._psk_feed import PskFeed

__all__ = ["StoreContext"]


class StoreContext:
    """One session, the master keyring, the request's clock reading, the audit log and the
    PSK change feed: built once per transaction and handed to each capability, so that they
    all write in the same transaction and agree on ``now_ms`` and on the feed lock."""

    def __init__(self, session: Session, keyring: MasterKeyring, now_ms: int) -> None:
        self.s = session
        self.keyring = keyring
        self.now_ms = now_ms
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.audit = AuditLog(session, now_ms)
        self.feed = PskFeed(session, now_ms, postgres=self.postgres)
