"""Engine, sessions and migrations.

SQLite: one file in WAL mode, private to the service's user (0600, as its -wal and -shm),
foreign keys on, a busy timeout, and write transactions opened with ``BEGIN IMMEDIATE`` so two
writers never deadlock on a read->write lock upgrade (they queue on the busy timeout instead).
PostgreSQL: psycopg 3; writers lock the rows they read-modify-write (``SELECT ... FOR UPDATE``).

SQLite writers of one process also queue on a mutex before ``BEGIN IMMEDIATE``: SQLite's own
busy handler polls with sleeps of 1, 2, 5, ... 100 ms, so under concurrent requests a writer
that lost the race would sleep milliseconds after the lock was free (p99 in tens of ms). The
busy timeout still covers writers in other processes. ``synchronous=NORMAL`` with WAL is
SQLite's documented durable-against-corruption setting (a power loss may lose the last
transactions, never corrupt the file); the page cache and mmap sizes keep the indexes of
a million SIMs in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from ._files import private_sqlite
from ._prepared import DriverTransaction

__all__ = ["Database", "downgrade", "migrate"]

_MIGRATIONS = Path(__file__).with_name("migrations")


def _normalize_url(url: str) -> str:
    # Plain postgres URLs get the psycopg 3 driver (psycopg2 is not a dependency).
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Database:
    """An engine plus two session factories: ``read()`` and ``write()`` transactions."""

    def __init__(self, url: str) -> None:
        url = _normalize_url(url)
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            # created 0600 before SQLite opens it: the -wal and -shm files get its mode
            private_sqlite(make_url(url).database or "")
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_setup(self.engine)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(ztp_write=True)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        # Re-entrant: a nested write in one thread behaves as before (busy timeout).
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        with self._write_lock or nullcontext(), self._write() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[DriverTransaction]:
        """A write transaction on a driver connection of the pool, for statements of
        ``_prepared`` only (the device hot path): committed on normal exit, rolled back on
        any exception or by ``tx.rollback()`` inside the block. The same lock and
        ``BEGIN IMMEDIATE`` as :meth:`write` (PostgreSQL: the driver begins implicitly)."""
        with self._write_lock or nullcontext():
            pooled = self.engine.raw_connection()
            try:
                tx = DriverTransaction(self.engine.dialect, pooled.dbapi_connection)
                if self.is_sqlite:
                    pooled.dbapi_connection.execute("BEGIN IMMEDIATE")
                try:
                    yield tx
                except BaseException:
                    tx.rollback()
                    raise
                if tx.active:
                    tx.active = False
                    pooled.dbapi_connection.commit()
            finally:
                pooled.close()  # back to the pool (which resets it: a rollback)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (pysqlite quirk)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA cache_size=-32768")  # KiB: 32 MiB per connection, grown on use
        cur.execute("PRAGMA mmap_size=1073741824")  # reads through the OS page cache
        cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("ztp_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = db.engine
    return cfg


def migrate(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic upgrade)."""
    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str) -> None:
    """Take the schema back to ``revision`` (``"base"``: drop everything). Loses data."""
    command.downgrade(alembic_config(db), revision)
