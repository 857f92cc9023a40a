"""Fixtures for the configuration service tests (ztp.service, ztp.iccid).

``db_url`` is parametrized over SQLite and PostgreSQL. The PostgreSQL server is a throwaway
cluster started once per session on loopback (initdb/pg_ctl from Debian's package; as root the
commands run as the ``postgres`` user, which PostgreSQL requires); each test gets a fresh
database. Without PostgreSQL binaries the postgres tests are skipped.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from starlette.testclient import TestClient
from ztp.service import (
    Credentials,
    MasterKeyring,
    ServiceClient,
    Settings,
    bootstrap_credentials,
    create_app,
)

from .. import peers

# Bounded property tests: CI runs on 2 cores and the whole part must stay well under 2 minutes.
settings.register_profile("service", max_examples=50, deadline=None)
settings.load_profile("service")

ICCID = "8944502509186389635"
IDENTITY_HEX = "984405529081369836f5"
PSK = bytes(range(16))


class FakeClock:
    """Injected wall clock (epoch ms): tests move time instead of sleeping."""

    def __init__(self, now_ms: int = 1_780_000_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


# ---------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgCluster:
    host: str
    port: int

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = _pg_bin()
    if bindir is None:
        peers.missing("PostgreSQL binaries not installed")
    root = os.geteuid() == 0
    tmp = Path(tempfile.mkdtemp(prefix="ztp-pg-"))
    data = tmp / "data"
    prefix: list[str] = []
    if root:
        shutil.chown(tmp, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, env=env)
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={tmp} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100")
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts,
                    "-l", str(tmp / "log"), "-w", "start"],
                   check=True, capture_output=True, env=env)
    try:
        yield PgCluster("127.0.0.1", port)
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, env=env)
        shutil.rmtree(tmp, ignore_errors=True)


def _create_pg_db(cluster: PgCluster) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"host={cluster.host} port={cluster.port} user=postgres "
                         "dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ztp.db'}"
    return _create_pg_db(request.getfixturevalue("pg_cluster"))


# ---------------------------------------------------------------------------- service


@dataclass
class Svc:
    settings: Settings
    clock: FakeClock
    app: object
    http: TestClient
    creds: Credentials
    admin: ServiceClient
    gateway: ServiceClient

    def client(self, token: str | None = None) -> ServiceClient:
        return ServiceClient(http=self.http, token=token)

    def device_get(self, device_hex: str = "00112233", iccid_hex: str = IDENTITY_HEX,
                   identity: str = IDENTITY_HEX, gateway: str = "gw-test", tag: str = "1"):
        return self.http.get(
            f"/v1/config/{device_hex}", params={"iccid": iccid_hex},
            headers={"Authorization": f"Bearer {self.gateway.token}",
                     "X-ZTP-Identity": identity, "X-ZTP-Key-Tag": tag,
                     "X-ZTP-Gateway": gateway})


def make_settings(db_url: str, clock: FakeClock, **kw: object) -> Settings:
    return Settings(database_url=db_url, master_key=kw.pop("master_key", None)
                    or MasterKeyring.generate(), fast_hashing=True, clock_ms=clock, **kw)


@contextmanager
def running_service(db_url: str) -> Iterator[Svc]:
    """The service app on ``db_url`` in a TestClient, with an admin and a gateway logged in:
    the one setup the service and console tests share."""
    clock = FakeClock()
    st = make_settings(db_url, clock)
    creds = bootstrap_credentials(st)
    app = create_app(st)
    with TestClient(app) as http:
        admin = ServiceClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        gateway = ServiceClient(http=http)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        yield Svc(st, clock, app, http, creds, admin, gateway)


@pytest.fixture
def svc(db_url: str) -> Iterator[Svc]:
    with running_service(db_url) as s:
        yield s


@contextmanager
def serve_app(app: object) -> Iterator[str]:
    """Run ``app`` on uvicorn in a thread on a free loopback port; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(1000):  # wait until it listens (a start-up wait, not a timing assertion)
        if server.started:
            break
        time.sleep(0.01)
    else:
        raise RuntimeError("uvicorn did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
