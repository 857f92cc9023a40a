"""OTA PSK rotation: rotation records and the per-SIM OTA counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ota_rotation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sim.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("batch", sa.String(32), nullable=False, index=True),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("old_tag", sa.String(32), nullable=False),
        sa.Column("new_tag", sa.String(32), nullable=False),
        sa.Column("next_due_ms", sa.BigInteger(), nullable=True, index=True),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "ota_counter",
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sim.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("counter", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ota_counter")
    op.drop_table("ota_rotation")
