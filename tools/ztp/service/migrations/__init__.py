"""Alembic migrations of the configuration service schema (see ``_db.migrate``)."""
