"""Device state, label (fleet) configurations and staged rollouts (issue 17).

Revision ID: 0003_device_state
Revises: 0002
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_device_state"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sim.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_source", sa.String(112), nullable=True),
        sa.Column("delivered_version", sa.Integer(), nullable=True),
        sa.Column("delivered_digest", sa.String(14), nullable=True),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=True),
        sa.Column("reported_digest", sa.String(14), nullable=True),
        sa.Column("reported_version", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("rejected_digest", sa.String(14), nullable=True),
        sa.Column("reported_ms", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_digest", sa.String(14), nullable=True),
        sa.UniqueConstraint("sim_id", "device_id"),
    )
    op.create_table(
        "label_config",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label_key", sa.String(32), nullable=False),
        sa.Column("label_value", sa.String(64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False, unique=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("require_json", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("label_key", "label_value"),
    )
    op.create_table(
        "label_config_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("config_id", sa.Integer(),
                  sa.ForeignKey("label_config.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("comment", sa.String(200), nullable=False),
        sa.UniqueConstraint("config_id", "version"),
    )
    op.create_table(
        "rollout",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("config_id", sa.Integer(),
                  sa.ForeignKey("label_config.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=False),
        sa.Column("to_digest", sa.String(14), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("stages_json", sa.Text(), nullable=False),
        sa.Column("devices_json", sa.Text(), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("max_failures", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rollout")
    op.drop_table("label_config_version")
    op.drop_table("label_config")
    op.drop_table("device_state")
