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

import sqlite3
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
        self._nowait: Any | None = None  # see _nowait_connection

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
    def write_connection(self, *, wait: bool = True) -> Iterator[DriverTransaction | None]:
        """A write transaction on a driver connection, for statements of ``_prepared`` only
        (the device hot path): committed on normal exit, rolled back on any exception or by
        ``tx.rollback()`` inside the block. The same lock and ``BEGIN IMMEDIATE`` as
        :meth:`write` (PostgreSQL: the driver begins implicitly).

        ``wait=False`` (the event loop's own attempt, SQLite only): yields None at once
        instead of waiting, when another writer of this process holds the lock or another
        process holds SQLite's write lock (busy timeout 0), and always on PostgreSQL (a
        network round trip). The caller then tries again from a thread, with ``wait=True``.
        """
        if wait:
            with self._write_lock or nullcontext():
                pooled = self.engine.raw_connection()
                try:
                    with _finish(self._begin(pooled.dbapi_connection)) as tx:
                        yield tx
                finally:
                    pooled.close()  # back to the pool (which resets it: a rollback)
            return
        lock = self._write_lock
        if lock is None or not lock.acquire(blocking=False):
            yield None
            return
        try:
            try:
                tx: DriverTransaction | None = self._begin(self._nowait_connection())
            except sqlite3.OperationalError:  # "database is locked": another process writes
                tx = None
            if tx is None:
                yield None
            else:
                with _finish(tx) as tx:
                    yield tx
        finally:
            lock.release()

    def _begin(self, dbapi_connection: Any) -> DriverTransaction:
        if self.is_sqlite:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        return DriverTransaction(self.engine.dialect, dbapi_connection)

    def _nowait_connection(self) -> Any:
        """The connection of ``write_connection(wait=False)``, kept out of the pool: used
        only under the write lock, with a busy timeout of 0."""
        if self._nowait is None:
            self._nowait = self.engine.raw_connection()
            self._nowait.dbapi_connection.execute("PRAGMA busy_timeout=0")
        return self._nowait.dbapi_connection

    def dispose(self) -> None:
        with self._write_lock or nullcontext():
            if self._nowait is not None:
                self._nowait.invalidate()  # closed, not returned: its busy timeout is 0
                self._nowait = None
        self.engine.dispose()


@contextmanager
def _finish(tx: DriverTransaction) -> Iterator[DriverTransaction]:
    """Commit ``tx`` when the block ends normally (unless it rolled back), else roll back."""
    try:
        yield tx
    except BaseException:
        tx.rollback()
        raise
    if tx.active:
        tx.active = False
        tx.dbapi_connection.commit()


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
