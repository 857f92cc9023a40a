"""Tables of device state, label (fleet) configurations and staged rollouts (issue 17;
docs/service.md "Devices, fleets and rollouts"); migration 0003_device_state.

Digests are the device's names for bodies: ``crc32:`` + 8 lowercase hex digits of
``zlib.crc32`` over the body bytes (``_reports.body_digest``; the firmware computes the same in
``lib/config.py``). The service's version numbers never reach the device, so "in sync" is
judged by digest.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ._models import Base

__all__ = ["DeviceState", "LabelConfig", "LabelConfigVersion", "Rollout"]

DIGEST_LEN = 14  # "crc32:" + 8 hex digits
SOURCE_LEN = 112  # "label:" + 32-character key + "=" + 64-character value (and room)


class DeviceState(Base):
    """What the service delivered to one device (SIM + DeviceID) and what the device last
    reported. What it *should* hold (desired) is not stored: it is resolved when asked, so it
    follows configuration changes and rollouts without a write per device."""

    __tablename__ = "device_state"
    __table_args__ = (UniqueConstraint("sim_id", "device_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    # device | default | label:key=value; NULL: nothing delivered yet
    delivered_source: Mapped[str | None] = mapped_column(String(SOURCE_LEN), nullable=True)
    delivered_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delivered_digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True)
    delivered_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reported_digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True)
    reported_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    result_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rejected_digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True)
    reported_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # the last digest the device reported "confirmed" (after mark_good): a later "unchanged"
    # report of the same body does not undo the confirmation
    confirmed_digest: Mapped[str | None] = mapped_column(String(DIGEST_LEN), nullable=True)


class LabelConfig(Base):
    """A configuration for every SIM carrying the label ``key=value``. ``priority`` orders
    the label configurations of a SIM with several matching labels (the highest wins); it is
    unique, so two labels never tie. ``current_version`` 0: no body in force yet (its first
    body is still in a rollout)."""

    __tablename__ = "label_config"
    __table_args__ = (UniqueConstraint("label_key", "label_value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_key: Mapped[str] = mapped_column(String(32))
    label_value: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, unique=True)
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    require_json: Mapped[bool] = mapped_column(Boolean, default=False)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class LabelConfigVersion(Base):
    """Every body a label configuration had or has in a rollout (history, never changed)."""

    __tablename__ = "label_config_version"
    __table_args__ = (UniqueConstraint("config_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(
        ForeignKey("label_config.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(String(200), default="")


class Rollout(Base):
    """A new body of a label configuration going out stage by stage (``_rollouts``).

    ``stages_json``: the cumulative percentages, ascending, the last 100 (0 first when
    ``devices_json`` lists devices that go first). ``stage``: index of the current stage.
    state: running | paused | stopped | completed | aborted.
    """

    __tablename__ = "rollout"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(
        ForeignKey("label_config.id", ondelete="CASCADE"), index=True)
    from_version: Mapped[int] = mapped_column(Integer)  # 0: the label had no body
    to_version: Mapped[int] = mapped_column(Integer)
    to_digest: Mapped[str] = mapped_column(String(DIGEST_LEN))
    state: Mapped[str] = mapped_column(String(16), index=True)
    stages_json: Mapped[str] = mapped_column(Text)
    devices_json: Mapped[str] = mapped_column(Text, default="[]")
    stage: Mapped[int] = mapped_column(Integer, default=0)
    max_failures: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(200), default="")
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))
