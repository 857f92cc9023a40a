"""Alembic migrations: the migrated schema equals the ORM models; downgrade and upgrade work."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from ztp.service import Database, migrate
from ztp.service._db import alembic_config, downgrade
from ztp.service._models import Base


def test_migrations_match_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        migrate(db)
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
            assert ctx.get_current_revision() == head
        downgrade(db, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        migrate(db)
        migrate(db)  # idempotent
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_sqlite_uses_wal(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()
