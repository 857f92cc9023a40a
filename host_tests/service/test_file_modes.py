"""The service's data is private to its user (issue 13 item 3): ``ztp service init`` makes the
data directory 0700 and the master key, ``ztp.db``, ``-wal`` and ``-shm`` 0600 whatever the
umask, and tightens existing ones with a warning."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from ztp.cli import main
from ztp.service import Database, Settings


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("ZTP_DATA_DIR", str(data))
    for var in ("ZTP_MASTER_KEY", "ZTP_MASTER_KEY_FILE", "ZTP_DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    old = os.umask(0o022)  # the usual umask, which made everything world-readable
    try:
        yield data
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def init() -> None:
    result = CliRunner().invoke(main, ["service", "init"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def use_database(data: Path) -> None:
    """Write through SQLite as the service does, so the -wal and -shm files exist."""
    db = Database(f"sqlite:///{data / 'ztp.db'}")
    with db.write() as session:
        session.connection().exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
        session.connection().exec_driver_sql("INSERT INTO t VALUES (1)")
    conn = sqlite3.connect(data / "ztp.db")  # keep the WAL around while we look
    try:
        assert (data / "ztp.db-wal").exists() and (data / "ztp.db-shm").exists()
        for name in ("ztp.db", "ztp.db-wal", "ztp.db-shm"):
            assert mode(data / name) == 0o600, name
    finally:
        conn.close()
        db.dispose()


def test_init_makes_everything_private(data: Path) -> None:
    init()
    assert mode(data) == 0o700
    assert mode(data / "master.key") == 0o600
    assert mode(data / "ztp.db") == 0o600
    use_database(data)


def test_existing_files_are_tightened_with_a_warning(
    data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    init()
    names = ("master.key", "ztp.db", "ztp.db-wal", "ztp.db-shm")
    holder = sqlite3.connect(data / "ztp.db")  # an open connection keeps the WAL and SHM
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("CREATE TABLE t (x)")
        holder.commit()
        os.chmod(data, 0o755)
        for name in names:
            os.chmod(data / name, 0o644)  # as an earlier version left them
        with caplog.at_level(logging.WARNING, logger="ztp.service"):
            Database(Settings.from_env().database_url).dispose()
        assert mode(data) == 0o700
        for name in names:
            assert mode(data / name) == 0o600, name
    finally:
        holder.close()
    warned = "\n".join(r.getMessage() for r in caplog.records)
    assert f"{data} was open to other users (mode 0755): now 0700" in warned
    for name in names:
        assert f"{data / name} was open to other users (mode 0644): now 0600" in warned
    # private already: nothing more to say
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ztp.service"):
        Database(Settings.from_env().database_url).dispose()
    assert not caplog.records


def test_memory_database_untouched(tmp_path: Path) -> None:
    Database("sqlite://").dispose()
    Database("sqlite:///:memory:").dispose()
    assert not list(tmp_path.iterdir())
