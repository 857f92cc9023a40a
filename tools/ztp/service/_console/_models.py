"""Tables of the operator console (issue 18): operator accounts, their server-side sessions,
and the label index the SIM search uses. Migration ``0004_console_users`` mirrors them.

``sim_label`` (its model is ``SimLabel`` in the service's ``_models``, as the API's label
filters read it too) is kept by database triggers on ``sim`` (insert, and update of
``labels_json``), not by the store: every path that writes a SIM (the API, bulk imports
written as Core statements, the CLI) keeps it right without knowing it exists, and a label
filter becomes an index range scan instead of decoding the JSON of every SIM row.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .._models import AuditEvent, Base, Sim, SimLabel

__all__ = ["ConsoleSession", "OperatorUser", "SimLabel"]


class OperatorUser(Base):
    """A person who signs in to the console; the audit names them (``actor`` = username)."""

    __tablename__ = "operator_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # Argon2id (PHC string)
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | viewer
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ConsoleSession(Base):
    """A signed-in browser. Only the SHA-256 of the cookie's random token is stored."""

    __tablename__ = "console_session"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("operator_user.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))  # synchronizer token of this session
    created_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    ended_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# Keyset pages of the console's lists: SIMs by state in ICCID order, the audit log by actor
# and by time (newest first), all walked from an index, never sorted.
Index("ix_sim_state_iccid", Sim.state, Sim.iccid)
Index("ix_audit_event_actor_id", AuditEvent.actor, AuditEvent.id)
Index("ix_audit_event_at_ms", AuditEvent.at_ms)
