"""Initial schema: clients, tokens, SIMs, sealed keys, configurations, audit, telemetry.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(200), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "token",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column(
            "client_pk",
            sa.Integer(),
            sa.ForeignKey("client.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("issued_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ms", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "sim",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("iccid", sa.String(20), nullable=False, unique=True),
        sa.Column("identity_hex", sa.String(20), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("labels_json", sa.Text(), nullable=False),
        sa.Column("bind_first_device", sa.Boolean(), nullable=False),
        sa.Column("bound_device_id", sa.String(128), nullable=True),
        sa.Column("last_device_id", sa.String(128), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "sim_key",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "sim_id",
            sa.Integer(),
            sa.ForeignKey("sim.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("master_version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("sim_id", "kind", "tag"),
    )
    op.create_table(
        "config_slot",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "sim_id",
            sa.Integer(),
            sa.ForeignKey("sim.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("device_key", sa.String(128), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("require_json", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("sim_id", "device_key"),
    )
    op.create_table(
        "config_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "slot_id",
            sa.Integer(),
            sa.ForeignKey("config_slot.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("comment", sa.String(200), nullable=False),
        sa.UniqueConstraint("slot_id", "version"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False, index=True),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("iccid", sa.String(20), nullable=True, index=True),
        sa.Column("device_id", sa.String(128), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("detail_json", sa.Text(), nullable=False),
    )
    op.create_table(
        "telemetry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "sim_id",
            sa.Integer(),
            sa.ForeignKey("sim.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("gateway", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "psk_change",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("identity_hex", sa.String(20), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "psk_change",
        "telemetry",
        "audit_event",
        "config_version",
        "config_slot",
        "sim_key",
        "sim",
        "token",
        "client",
    ):
        op.drop_table(table)
