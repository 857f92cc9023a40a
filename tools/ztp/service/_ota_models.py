"""Tables of OTA PSK rotation (docs/ota.md, "Operator view"); migration 0002.

``OtaRotation.record_json`` is the ``ztp.ota.Rotation`` state (``to_dict``: no key material);
the other columns are copies for queries (state, due time, batch). ``OtaCounter`` is the
per-SIM CNTR of the OTA security domain: every packet, retries included, takes the next value.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ._models import Base

__all__ = ["OtaCounter", "OtaRotation"]


class OtaRotation(Base):
    __tablename__ = "ota_rotation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"), index=True)
    batch: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # ztp.ota.RotationState
    old_tag: Mapped[str] = mapped_column(String(32))
    new_tag: Mapped[str] = mapped_column(String(32))
    next_due_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    record_json: Mapped[str] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(64))


class OtaCounter(Base):
    __tablename__ = "ota_counter"
    sim_id: Mapped[int] = mapped_column(ForeignKey("sim.id", ondelete="CASCADE"),
                                        primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger)
