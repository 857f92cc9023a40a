"""``ztp bench service``: the configuration service with N SIMs, SQLite vs PostgreSQL.

For each database: a fresh schema (Alembic migrations run by the app), N SIMs imported
through the operator API (``POST /v1/sims/import`` as CSV ``iccid,psk`` in batches, then
``POST /v1/configs/import`` with one configuration per SIM), then config lookups through the
device endpoint ``GET /v1/config/{device}?iccid={hex}`` with the gateway's token and
``X-ZTP-Identity`` headers, for SIMs picked at random, one request at a time. The app runs
in-process behind Starlette's TestClient (ASGI, no sockets): the figures are the service's
own cost (routing, auth, SQL) plus the test client's, not a network server's.

PostgreSQL: a throwaway cluster on loopback started by the benchmark (initdb + pg_ctl from
Debian's package, as the service tests do; as root it runs as the ``postgres`` user),
fsync off (a benchmark cluster; say so when comparing with a production one).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ._common import BenchError, Table, percentile

DEVICE_HEX = "000102030405060708090a0b0c0d0e0f"
BODY = '{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'


def _iccid(i: int) -> str:
    from ztp.iccid import luhn_check_digit

    payload = f"8944{i:014d}"
    return payload + luhn_check_digit(payload)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on loopback; yields a SQLAlchemy URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise BenchError("PostgreSQL not installed: apt-get install postgresql")
    bindir = Path(found[-1]).parent
    tmp = Path(tempfile.mkdtemp(prefix="ztp-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {**os.environ, "LC_ALL": "C"}
    data = tmp / "data"
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={tmp} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"),
         "-w", "start"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    try:
        import psycopg

        dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "ztp"')
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/ztp"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, env=env,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)


def measure(db_url: str, sims: int, lookups: int, batch: int) -> dict[str, float]:
    from starlette.testclient import TestClient

    from ztp.service import (
        MasterKeyring,
        ServiceClient,
        Settings,
        bootstrap_credentials,
        create_app,
    )

    settings = Settings(database_url=db_url, master_key=MasterKeyring.generate())
    creds = bootstrap_credentials(settings)
    app = create_app(settings)
    rng = random.Random(9)
    with TestClient(app) as http:
        admin = ServiceClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        gateway = ServiceClient(http=http)
        gateway.login(creds.gateway_id, creds.gateway_secret)
        t0 = time.perf_counter()
        for start in range(0, sims, batch):
            rows = range(start, min(sims, start + batch))
            csv = "iccid,psk\n" + "".join(f"{_iccid(i)},{os.urandom(16).hex()}\n" for i in rows)
            admin.request(
                "POST", "/v1/sims/import", content=csv, headers={"Content-Type": "text/csv"}
            )
        t1 = time.perf_counter()
        for start in range(0, sims, batch):
            configs = [
                {"iccid": _iccid(i), "device_id": DEVICE_HEX, "body": BODY}
                for i in range(start, min(sims, start + batch))
            ]
            admin.request("POST", "/v1/configs/import", json={"configs": configs})
        t2 = time.perf_counter()
        from ztp.iccid import iccid_to_hex

        headers = {
            "Authorization": f"Bearer {gateway.token}",
            "X-ZTP-Key-Tag": "1",
            "X-ZTP-Gateway": "bench",
        }
        latencies = []
        bad = 0
        targets = [iccid_to_hex(_iccid(rng.randrange(sims))) for _ in range(lookups)]
        t3 = time.perf_counter()
        for ident in targets:
            s = time.perf_counter()
            resp = http.get(
                f"/v1/config/{DEVICE_HEX}?iccid={ident}",
                headers={**headers, "X-ZTP-Identity": ident},
            )
            latencies.append(time.perf_counter() - s)
            if resp.status_code != 200 or resp.content != BODY.encode():
                bad += 1
        t4 = time.perf_counter()
    return {
        "import_sims_s": t1 - t0,
        "import_configs_s": t2 - t1,
        "lookups": lookups,
        "lookup_s": t4 - t3,
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "failed": bad,
    }


def run(
    sims: int = 1_000_000,
    lookups: int = 5000,
    batch: int = 10_000,
    databases: tuple[str, ...] = ("sqlite", "postgres"),
) -> Table:
    results: dict[str, dict[str, float]] = {}
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory(prefix="ztp-bench-sqlite-") as tmp:
            results["SQLite"] = measure(f"sqlite:///{tmp}/ztp.db", sims, lookups, batch)
    if "postgres" in databases:
        with postgres() as url:
            results["PostgreSQL"] = measure(url, sims, lookups, batch)
    table = Table(
        title=f"Configuration service with {sims:,} SIMs + configurations ({lookups:,} lookups)",
        columns=[
            "database",
            "import SIMs+PSKs",
            "import configs",
            "SIMs/s imported",
            "lookups/s",
            "p50 ms",
            "p99 ms",
            "failed",
            f"vs {next(iter(results))}",
        ],
    )
    first = next(iter(results.values()))
    ref = first["lookups"] / first["lookup_s"]
    for name, r in results.items():
        rate = r["lookups"] / r["lookup_s"]
        total = r["import_sims_s"] + r["import_configs_s"]
        table.rows.append(
            [
                name,
                f"{r['import_sims_s']:,.1f} s",
                f"{r['import_configs_s']:,.1f} s",
                f"{sims / total:,.0f}",
                f"{rate:,.0f}",
                f"{r['p50_s'] * 1e3:.2f}",
                f"{r['p99_s'] * 1e3:.2f}",
                f"{int(r['failed'])}",
                f"{rate / ref:.2f}x",
            ]
        )
    table.notes += [
        f"import through the operator API in batches of {batch:,} rows (CSV keys, then JSON "
        "configurations), each batch one transaction",
        "lookups: device endpoint with the gateway token, random SIMs, one at a time, "
        "in-process ASGI (Starlette TestClient), no network server",
    ]
    table.data = {"results": results, "sims": sims}
    return table
