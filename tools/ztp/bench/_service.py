"""``ztp bench service``: the configuration service with N SIMs, SQLite vs PostgreSQL.

For each database: a fresh schema, then the service as it is deployed (``ztp service serve``:
uvicorn in its own process on loopback) and, against it over HTTP:

- import: the vendor key file of N SIMs (CSV ``iccid,psk``, written before the clock starts)
  through ``ztp.service.import_key_file``, the path of ``ztp sims import`` (the whole
  file checked, then chunks of ``batch`` rows, one request and one transaction each), then
  one configuration per SIM through ``POST /v1/configs/import`` in requests of ``batch``
  rows;
- lookups: a C load generator (``_c_httpload.py``: T threads, one keep-alive connection each)
  sends ``GET /v1/config/{device}?iccid={hex}`` with the gateway token and the identity
  headers for SIMs picked at random (most are first requests of their SIM, which also note
  the device: an UPDATE besides the audit INSERT), then the same for the gateway's
  ``GET /v1/gateway/psks/{identity}``, then config lookups over one connection (latency
  without queueing). Every reply must be 200, and a sample of bodies is checked.

PostgreSQL: a throwaway cluster on loopback started by the benchmark (initdb + pg_ctl from
Debian's package, as the service tests do; as root it runs as the ``postgres`` user),
fsync off (a benchmark cluster; say so when comparing with a production one).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ._c_httpload import HTTPLOAD_C
from ._common import BenchError, Table, build_c, cpu_seconds, python

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(db_url: str, keyring_text: str, workdir: Path) -> Iterator[tuple[str, int]]:
    """``ztp service serve`` in its own process; yields (base URL, pid)."""
    port = _free_port()
    env = {**os.environ, "ZTP_DATABASE_URL": db_url, "ZTP_MASTER_KEY": keyring_text}
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen(
        [python(), "-m", "ztp", "service", "serve", "--data-dir", str(workdir), "--no-init",
         "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(600):  # wait until it listens (start-up, not a measurement)
            if proc.poll() is not None:
                raise BenchError(f"service did not start: {(workdir / 'server.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise BenchError("service did not start within 60 s")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _load(exe: Path, port: int, idfile: Path, threads: int, count: int, template: str,
          server_pid: int) -> dict[str, float]:
    cpu0 = cpu_seconds(server_pid)
    out = subprocess.run(
        [str(exe), "127.0.0.1", str(port), str(idfile), str(threads), str(count), "200",
         template], capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    result["server_cpu_s"] = cpu_seconds(server_pid) - cpu0
    return result


def measure(db_url: str, sims: int, lookups: int, batch: int,
            concurrency: int = 8) -> dict[str, object]:
    import httpx

    from ztp.iccid import iccid_to_hex
    from ztp.service import (
        Database,
        MasterKeyring,
        ServiceClient,
        Settings,
        bootstrap_credentials,
        import_key_file,
        migrate,
    )

    exe = build_c("httpload", HTTPLOAD_C)
    keyring = MasterKeyring.generate()
    settings = Settings(database_url=db_url, master_key=keyring)
    db = Database(db_url)
    migrate(db)
    db.dispose()
    creds = bootstrap_credentials(settings)
    rng = random.Random(9)
    with tempfile.TemporaryDirectory(prefix="ztp-bench-svc-") as tmp:
        work = Path(tmp)
        keys = work / "keys.csv"
        with keys.open("w") as fh:
            fh.write("iccid,psk\n")
            for i in range(sims):
                fh.write(f"{_iccid(i)},{rng.randbytes(16).hex()}\n")
        with _server(db_url, keyring.serialize(), work) as (url, pid):
            admin = ServiceClient(url, timeout_s=300)
            admin.login(creds.admin_id, creds.admin_secret)
            gateway = ServiceClient(url, timeout_s=30)
            gateway.login(creds.gateway_id, creds.gateway_secret)
            t0 = time.perf_counter()
            imported = import_key_file(admin, keys, chunk_rows=batch)
            t1 = time.perf_counter()
            for start in range(0, sims, batch):
                configs = [
                    {"iccid": _iccid(i), "device_id": DEVICE_HEX, "body": BODY}
                    for i in range(start, min(sims, start + batch))
                ]
                admin.request("POST", "/v1/configs/import", json={"configs": configs})
            t2 = time.perf_counter()
            if imported["sims_created"] != sims:
                raise BenchError(f"imported {imported['sims_created']} SIMs, not {sims}")
            idfile = work / "ids.txt"
            idfile.write_text("".join(
                iccid_to_hex(_iccid(rng.randrange(sims))) + "\n"
                for _ in range(lookups)))
            common = (f"Host: 127.0.0.1\r\nAuthorization: Bearer {gateway.token}\r\n"
                      "X-ZTP-Key-Tag: 1\r\nX-ZTP-Gateway: bench\r\n")
            config_req = (f"GET /v1/config/{DEVICE_HEX}?iccid=%1$s HTTP/1.1\r\n{common}"
                          "X-ZTP-Identity: %1$s\r\n\r\n")
            psk_req = f"GET /v1/gateway/psks/%1$s HTTP/1.1\r\n{common}\r\n"
            port = int(url.rsplit(":", 1)[1])
            warm = min(lookups, 1000)  # connections, pools, caches
            _load(exe, port, idfile, concurrency, warm, config_req, pid)
            config = _load(exe, port, idfile, concurrency, lookups, config_req, pid)
            psk = _load(exe, port, idfile, concurrency, lookups, psk_req, pid)
            seq = _load(exe, port, idfile, 1, min(lookups, 2000), config_req, pid)
            bad = 0
            with httpx.Client(base_url=url) as http:  # the bodies, on a sample
                for line in idfile.read_text().split()[:200]:
                    r = http.get(f"/v1/config/{DEVICE_HEX}", params={"iccid": line},
                                 headers={"Authorization": f"Bearer {gateway.token}",
                                          "X-ZTP-Identity": line, "X-ZTP-Key-Tag": "1"})
                    bad += r.status_code != 200 or r.content != BODY.encode()
    return {
        "import_sims_s": t1 - t0,
        "import_configs_s": t2 - t1,
        "import_requests": imported["requests"],
        "config": config,
        "psk": psk,
        "sequential": seq,
        "bad_bodies": bad,
        "concurrency": concurrency,
        "loadavg": os.getloadavg(),
    }


def run(
    sims: int = 1_000_000,
    lookups: int = 20_000,
    batch: int = 20_000,
    databases: tuple[str, ...] = ("sqlite", "postgres"),
    concurrency: int = 8,
) -> Table:
    results: dict[str, dict[str, object]] = {}
    if "sqlite" in databases:
        with tempfile.TemporaryDirectory(prefix="ztp-bench-sqlite-") as tmp:
            results["SQLite"] = measure(f"sqlite:///{tmp}/ztp.db", sims, lookups, batch,
                                        concurrency)
    if "postgres" in databases:
        with postgres() as url:
            results["PostgreSQL"] = measure(url, sims, lookups, batch, concurrency)
    table = Table(
        title=f"Configuration service with {sims:,} SIMs + configurations, over HTTP "
              f"({lookups:,} lookups, {concurrency} connections)",
        columns=[
            "database",
            "import SIMs+PSKs",
            "import configs",
            "SIMs/s imported",
            "config lookups/s",
            "p50 ms",
            "p99 ms",
            "PSK lookups/s",
            "PSK p99 ms",
            "1 conn: p50 / p99 ms",
            "server CPU us/lookup",
            "failed",
        ],
    )  # fmt: skip
    for name, r in results.items():
        cfg, psk, seq = r["config"], r["psk"], r["sequential"]
        assert isinstance(cfg, dict) and isinstance(psk, dict) and isinstance(seq, dict)
        total = float(r["import_sims_s"]) + float(r["import_configs_s"])  # type: ignore[arg-type]
        failed = int(cfg["fail"] + psk["fail"] + seq["fail"]) + int(r["bad_bodies"])  # type: ignore[call-overload]
        table.rows.append([
            name,
            f"{r['import_sims_s']:,.1f} s",
            f"{r['import_configs_s']:,.1f} s",
            f"{sims / total:,.0f}",
            f"{cfg['ok'] / cfg['seconds']:,.0f}",
            f"{cfg['p50_ms']:.2f}",
            f"{cfg['p99_ms']:.2f}",
            f"{psk['ok'] / psk['seconds']:,.0f}",
            f"{psk['p99_ms']:.2f}",
            f"{seq['p50_ms']:.2f} / {seq['p99_ms']:.2f}",
            f"{cfg['server_cpu_s'] / max(1, cfg['ok']) * 1e6:,.0f}",
            str(failed),
        ])  # fmt: skip
    table.notes += [
        f"import over HTTP as `ztp sims import` does: the key file checked whole, then "
        f"requests of {batch:,} rows, each one transaction; configurations likewise "
        "(POST /v1/configs/import)",
        "lookups: `ztp service serve` (one uvicorn process; httptools and uvloop when "
        "installed) on loopback; a C load "
        f"generator with {concurrency} keep-alive connections; random SIMs, so most config "
        "lookups are their SIM's first (the device is noted: an UPDATE besides the audit "
        "INSERT); every delivery and PSK lookup is audited",
        "server CPU: the service process only (PostgreSQL's own processes not counted)",
    ]
    table.data = {"results": results, "sims": sims}
    return table
