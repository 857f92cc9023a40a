"""Statements of the per-request hot paths, compiled once per database dialect and run on
the driver's cursor, inside the caller's transaction (a SQLAlchemy Connection's, or a
:class:`DriverTransaction`).

Why: SQLAlchemy Core spends about 45 us on each execution of the device lookup even when its
compiled cache hits (it derives the statement's cache key and builds an execution context and
a result every time); the driver runs the same SQL in about 3 us. A device request runs three
statements, so this is most of what a delivery costs on the service's core (issue 14).

What is given up, and why that is safe here: no type processing. Parameters must be values
the driver takes as they are (``str``, ``int``, ``bytes``, ``None``), and results come as the
driver returns them: a SQLite boolean is 0/1 (the callers test it by truth only), a blob is
``bytes``. Errors are the driver's own exceptions (the HTTP layer answers 500 for any
unexpected exception, as it does for SQLAlchemy's). The statement text is SQLAlchemy's own
compilation for the connection's dialect, so SQLite and PostgreSQL run what Core would run.
"""

from __future__ import annotations

import threading
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import Executable

__all__ = ["DriverTransaction", "Prepared"]


class DriverTransaction:
    """A transaction on a driver connection checked out of the engine's pool, for the hot
    paths that run only :class:`Prepared` statements (``Database.write_connection``).
    SQLAlchemy's Connection would add about 40 us per request for its begin/commit events
    and bookkeeping; this is what it would do, without them."""

    def __init__(self, dialect: Dialect, dbapi_connection: Any) -> None:
        self.dialect = dialect
        self.dbapi_connection = dbapi_connection
        self.active = True

    def rollback(self) -> None:
        """Undo everything of this transaction now (the block then ends without a commit)."""
        if self.active:
            self.active = False
            self.dbapi_connection.rollback()


def _dbapi(conn: Connection | DriverTransaction) -> Any:
    if isinstance(conn, DriverTransaction):
        return conn.dbapi_connection
    return conn.connection.dbapi_connection


class _Compiled:
    """One statement's SQL for one dialect, and how to lay its parameters out."""

    def __init__(self, stmt: Any, names: Sequence[str], dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(names))
        # Expanding parameters (IN of a constant list) are rendered as plain ones; the
        # statement text is the same for any values of ``names``.
        state = compiled.construct_expanded_state(dict.fromkeys(names))
        self.sql: str = state.statement
        given = set(names)
        missing = given - set(state.parameters)
        if missing:
            raise ValueError(f"statement has no bind parameter(s) {sorted(missing)}")
        self.defaults = {k: v for k, v in state.parameters.items() if k not in given}
        self.order: tuple[str, ...] | None = (
            tuple(state.positiontup) if compiled.positional else None)

    def args(self, params: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        if self.order is not None:
            get = params.get
            const = self.defaults  # the statement's constants (e.g. an IN list)
            return tuple(const[k] if k in const else get(k) for k in self.order)
        return {**self.defaults, **params}


class Prepared:
    """A Core statement run on the driver: ``rows(conn, params)`` or ``run(conn, params)``.

    Args:
        stmt: a SELECT, INSERT or UPDATE with named ``bindparam``s (an INSERT: the columns
            named in ``names``).
        names: every parameter a caller gives (a missing one is NULL).
    """

    def __init__(self, stmt: Executable, names: Sequence[str]) -> None:
        self._stmt = stmt
        self._names = tuple(names)
        self._lock = threading.Lock()
        self._by_dialect: dict[str, _Compiled] = {}
        columns = getattr(stmt, "selected_columns", None)
        self._row = namedtuple("Row", columns.keys()) if columns is not None else None  # type: ignore[misc]

    def _compiled(self, conn: Connection | DriverTransaction) -> _Compiled:
        dialect = conn.dialect
        found = self._by_dialect.get(dialect.name)
        if found is None:
            with self._lock:
                found = self._by_dialect.get(dialect.name)
                if found is None:
                    found = self._by_dialect[dialect.name] = _Compiled(
                        self._stmt, self._names, dialect)
        return found

    def _execute(self, conn: Connection | DriverTransaction, params: Mapping[str, Any]) -> Any:
        compiled = self._compiled(conn)
        cursor = _dbapi(conn).cursor()
        cursor.execute(compiled.sql, compiled.args(params))
        return cursor

    def rows(self, conn: Connection | DriverTransaction, params: Mapping[str, Any]) -> list[Any]:
        """The rows of a SELECT, as named tuples (attributes: the selected column keys)."""
        assert self._row is not None, "rows() of a statement that selects nothing"
        cursor = self._execute(conn, params)
        try:
            return list(map(self._row._make, cursor.fetchall()))
        finally:
            cursor.close()

    def run(self, conn: Connection | DriverTransaction, params: Mapping[str, Any]) -> int:
        """Run an INSERT or UPDATE; the number of rows it matched (driver rowcount)."""
        cursor = self._execute(conn, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()
