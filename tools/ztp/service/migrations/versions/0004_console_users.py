"""Operator console (issue 18): operator accounts, console sessions, the SIM label index
(kept by triggers from sim.labels_json) and the indexes of the console's keyset pages.

Revision ID: 0004_console_users
Revises: 0003_device_state
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_console_users"
down_revision = "0003_device_state"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER sim_label_insert AFTER INSERT ON sim BEGIN
         INSERT INTO sim_label (sim_id, key, value, iccid, state)
           SELECT NEW.id, j.key, j.value, NEW.iccid, NEW.state FROM json_each(NEW.labels_json) AS j;
       END""",
    """CREATE TRIGGER sim_label_update AFTER UPDATE OF labels_json, iccid, state ON sim BEGIN
         DELETE FROM sim_label WHERE sim_id = NEW.id;
         INSERT INTO sim_label (sim_id, key, value, iccid, state)
           SELECT NEW.id, j.key, j.value, NEW.iccid, NEW.state FROM json_each(NEW.labels_json) AS j;
       END""",
]
_PG_TRIGGERS = [
    """CREATE FUNCTION sim_label_sync() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF TG_OP = 'UPDATE' THEN
           DELETE FROM sim_label WHERE sim_id = NEW.id;
         END IF;
         INSERT INTO sim_label (sim_id, key, value, iccid, state)
           SELECT NEW.id, j.key, j.value, NEW.iccid, NEW.state
           FROM jsonb_each_text(NEW.labels_json::jsonb) AS j;
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER sim_label_insert AFTER INSERT ON sim
       FOR EACH ROW EXECUTE FUNCTION sim_label_sync()""",
    """CREATE TRIGGER sim_label_update AFTER UPDATE OF labels_json, iccid, state ON sim
       FOR EACH ROW EXECUTE FUNCTION sim_label_sync()""",
]


def upgrade() -> None:
    op.create_table(
        "operator_user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "console_session",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(),
                  sa.ForeignKey("operator_user.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "sim_label",
        sa.Column("sim_id", sa.Integer(), sa.ForeignKey("sim.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("key", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("iccid", sa.String(20), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
    )
    op.create_index("ix_sim_label_key_value_iccid", "sim_label", ["key", "value", "iccid"])
    op.create_index("ix_sim_label_key_value_state_iccid", "sim_label",
                    ["key", "value", "state", "iccid"])
    op.create_index("ix_sim_state_iccid", "sim", ["state", "iccid"])
    op.create_index("ix_audit_event_actor_id", "audit_event", ["actor", "id"])
    op.create_index("ix_audit_event_at_ms", "audit_event", ["at_ms"])
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _PG_TRIGGERS if postgres else _SQLITE_TRIGGERS:
        op.execute(statement)
    # the SIMs already registered
    each = ("jsonb_each_text(s.labels_json::jsonb)" if postgres
            else "json_each(s.labels_json)")
    op.execute(f"INSERT INTO sim_label (sim_id, key, value, iccid, state) "
               f"SELECT s.id, j.key, j.value, s.iccid, s.state FROM sim AS s, {each} AS j")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TRIGGER IF EXISTS sim_label_update" + (" ON sim" if postgres else ""))
    op.execute("DROP TRIGGER IF EXISTS sim_label_insert" + (" ON sim" if postgres else ""))
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS sim_label_sync()")
    op.drop_index("ix_audit_event_at_ms", table_name="audit_event")
    op.drop_index("ix_audit_event_actor_id", table_name="audit_event")
    op.drop_index("ix_sim_state_iccid", table_name="sim")
    op.drop_table("sim_label")
    op.drop_table("console_session")
    op.drop_table("operator_user")
