"""The service's files are private to its user: data directory 0700, files 0600 (issue 13).

The data directory holds the master key, the SQLite database and its ``-wal``/``-shm``
companions: configuration bodies are readable in the WAL, and the master key opens every sealed
PSK. They are created private whatever the umask, and existing ones that other users can read
are tightened, with a warning naming the path and both modes. SQLite gives ``-wal``,
``-shm`` and ``-journal`` the permissions of the database file, so creating that file 0600
before SQLite opens it covers them; existing companions are tightened too.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file", "private_sqlite"]

log = logging.getLogger("ztp.service")

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing directory of ours
    that others may enter or read is tightened (a warning says so). A directory owned by
    someone else (``/tmp``) is left alone: the files inside are private anyway."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    _tighten(path, only_ours=True)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 when absent; tighten an existing one (a warning
    says so; a file of another user that others can read is only warned about)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _tighten(path, only_ours=False)
    else:
        os.close(fd)


def private_sqlite(database: str) -> None:
    """The SQLite database file (a path; ``:memory:`` and ``""`` are skipped) and its
    companions, as :func:`private_file`."""
    if database in ("", ":memory:") or database.startswith("file:"):
        return
    path = Path(database)
    private_file(path)
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            _tighten(companion, only_ours=False)


def _tighten(path: Path, *, only_ours: bool) -> None:
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if st.st_uid != os.geteuid():
        if not only_ours:
            log.warning("%s is readable by other users (mode %04o) and not ours to change",
                        path, mode)
        return
    os.chmod(path, mode & 0o700)
    log.warning("%s was open to other users (mode %04o): now %04o", path, mode, mode & 0o700)
