"""Database schema (SQLAlchemy 2 ORM). Migrations in ``migrations/versions`` mirror this.

Times are epoch milliseconds (``*_ms``, BigInteger): portable between SQLite and PostgreSQL and
set from the injected clock. Key material is never stored in clear (``SimKey.sealed``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEvent",
    "Base",
    "Client",
    "ConfigSlot",
    "ConfigVersion",
    "PskChange",
    "Sim",
    "SimKey",
    "SimLabel",
    "Telemetry",
    "Token",
]


class Base(DeclarativeBase):
    pass


class Client(Base):
    """An OAuth2 client: operator (read/write/admin scopes) or gateway (scope gateway)."""

    __tablename__ = "client"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(200))  # space separated, RFC 6749 §3.3
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class Token(Base):
    __tablename__ = "token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("client.id", ondelete="CASCADE"), index=True)
    scopes: Mapped[str] = mapped_column(String(200))
    issued_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Sim(Base):
    __tablename__ = "sim"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iccid: Mapped[str] = mapped_column(String(20), unique=True)
    identity_hex: Mapped[str] = mapped_column(String(20), unique=True)  # EF_ICCID, lowercase
    state: Mapped[str] = mapped_column(String(16))  # active | suspended
    labels_json: Mapped[str] = mapped_column(Text, default="{}")
    bind_first_device: Mapped[bool] = mapped_column(Boolean, default=False)
    bound_device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class SimLabel(Base):
    """One label of one SIM (kept by triggers from ``sim.labels_json``). ``iccid`` and
    ``state`` are copied so that a label page, with or without a state, is read in ICCID order
    straight from an index (keyset paging), never by visiting the SIM rows it skips."""

    __tablename__ = "sim_label"
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"),
                                        primary_key=True)
    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64))
    iccid: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16))  # the SIM's, for "label and state"
    __table_args__ = (Index("ix_sim_label_key_value_iccid", "key", "value", "iccid"),
                      Index("ix_sim_label_key_value_state_iccid", "key", "value", "state",
                            "iccid"))


class SimKey(Base):
    """A per-SIM key, sealed (see ``_keys.MasterKeyring.seal``). kind: psk | kic | kid."""

    __tablename__ = "sim_key"
    __table_args__ = (UniqueConstraint("sim_id", "kind", "tag"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    tag: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # active | retired
    master_version: Mapped[int] = mapped_column(Integer)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))


class ConfigSlot(Base):
    """One configuration target: a SIM plus a DeviceID (hex), or ``default`` for the SIM."""

    __tablename__ = "config_slot"
    __table_args__ = (UniqueConstraint("sim_id", "device_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"), index=True)
    device_key: Mapped[str] = mapped_column(String(128))
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    require_json: Mapped[bool] = mapped_column(Boolean, default=False)


class ConfigVersion(Base):
    """History: every change is a new row; ``body`` NULL marks a deletion."""

    __tablename__ = "config_version"
    __table_args__ = (UniqueConstraint("slot_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slot_id: Mapped[int] = mapped_column(
        ForeignKey("config_slot.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(String(200), default="")


class AuditEvent(Base):
    """Every change and every delivery. ``iccid`` is plain text so it outlives the SIM row."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    gateway: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(8))  # info | alert
    iccid: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    device_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


class Telemetry(Base):
    __tablename__ = "telemetry"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    received_ms: Mapped[int] = mapped_column(BigInteger)
    gateway: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class PskChange(Base):
    """Append-only change feed for the gateways' PSK caches (``/v1/gateway/psk-changes``)."""

    __tablename__ = "psk_change"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_hex: Mapped[str] = mapped_column(String(20))
    at_ms: Mapped[int] = mapped_column(BigInteger)
