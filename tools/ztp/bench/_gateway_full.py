"""``ztp bench gateway --full``: the whole path as users run it, next to stunnel.

Rows: our gateway (``_gateway_proc``, logging in with a gateway credential, as
``ztp gateway --credentials-file``) on the server CPU in front of a real ``ztp service serve``
(uvicorn, SQLite in a temporary data directory, default log level and access log) on the
client CPU, beside the load generators; and stunnel on the server CPU in front of the
benchmark's trivial backend (``_backend``) on the client CPU, as in the gateway rows. Each
exchange is the same (connect, TLS psk_ke/CCM, ``GET /v1/config/...``, answer, close), and the
service answers it from its database: 100 SIMs imported with their PSKs and a configuration
each, through the operator API.

The figures are exchanges/s (goal of issue 14: ours >= stunnel's) and CPU-us per exchange
summed over both processes of the path (gateway + service; stunnel + backend). The load
generators share the client core with the service (or the backend): the core is busy with
the service's work too, so the rate says what the path delivers on two cores, not what the
gateway alone could.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from ._common import BenchError, Table, python, taskset

__all__ = ["run_full"]

DEVICE_ID = "000102030405060708090a0b0c0d0e0f"  # what the load generators ask for


def _ztp(*args: str) -> str:
    """``ztp ARGS`` in a child (the CLI as users run it); its stdout."""
    proc = subprocess.run(
        [python(), "-m", "ztp", *args], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        raise BenchError(f"ztp {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def _service_setup(data_dir: Path) -> dict[str, str]:
    """A fresh data directory with an admin and a gateway credential (``ztp service ...``)."""
    _ztp("service", "init", "--data-dir", str(data_dir))
    return {
        "admin_id": "admin",
        "admin_secret": _ztp("service", "create-admin", "--data-dir", str(data_dir)),
        "gateway_id": "bench-gw",
        "gateway_secret": _ztp(
            "service", "create-gateway", "bench-gw", "--data-dir", str(data_dir)
        ),
    }


def _import(url: str, creds: dict[str, str], sims: list[tuple[str, bytes]]) -> None:
    """The SIMs (ICCID, PSK) and one configuration each, through the operator API."""
    from ztp.service import ServiceClient

    from ._backend import BODY

    admin = ServiceClient(url, timeout_s=120)
    try:
        admin.login(creds["admin_id"], creds["admin_secret"])
        csv = "iccid,psk\n" + "".join(f"{iccid},{psk.hex()}\n" for iccid, psk in sims)
        admin.request("POST", "/v1/sims/import", content=csv, headers={"Content-Type": "text/csv"})
        configs = [{"iccid": i, "device_id": DEVICE_ID, "body": BODY.decode()} for i, _ in sims]
        admin.request("POST", "/v1/configs/import", json={"configs": configs})
    finally:
        admin.close()


def run_full(
    seconds: float = 10.0,
    threads: int = 6,
    identities: int = 100,
    server_cpu: int | None = 0,
    client_cpu: int | None = 1,
    warmup: float = 2.0,
    rounds: int = 3,
) -> Table:
    from . import _gateway as gw

    stunnel, exes = gw.tools()
    if rounds < 1:
        raise BenchError("rounds must be >= 1")
    args: dict[str, object] = {
        "threads": threads,
        "seconds": seconds,
        "warmup": warmup,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }
    sims = gw.sims(identities)
    ids = [(ef, psk) for ef, _, psk in sims]
    results: dict[tuple[str, str], list[dict[str, float]]] = {
        (srv, cli): [] for srv in ("ztp", "stunnel") for cli in gw.CLIENTS
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ztp-bench-full-") as tmp_name:
        tmp = Path(tmp_name)
        gw.write_id_files(tmp, ids)
        data_dir = tmp / "data"
        creds = _service_setup(data_dir)
        cred_file = tmp / "gateway-credentials.json"
        cred_file.touch(0o600)
        cred_file.write_text(json.dumps(creds))
        svc_port, st_port = gw.free_port(), gw.free_port()
        svc_cmd = [
            *taskset(client_cpu), python(), "-m", "ztp", "service", "serve",
            "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{svc_port}",
        ]  # fmt: skip
        backend_cmd = [*taskset(client_cpu), python(), "-m", "ztp.bench._backend"]
        with (
            gw.started(svc_cmd, tmp / "service.log", port_on_stdout=False) as svc,
            gw.started([*backend_cmd, str(tmp / "backend.ids")], tmp / "backend.log") as backend,
        ):
            gw.wait_port(svc_port, svc, 60.0)
            url = f"http://127.0.0.1:{svc_port}"
            _import(url, creds, [(iccid, psk) for _, iccid, psk in sims])
            backend_port = gw.read_port(backend)
            conf = tmp / "stunnel.conf"
            conf.write_text(gw.stunnel_conf(st_port, backend_port, tmp / "psk.txt"))
            gw_cmd = [
                *taskset(server_cpu), python(), "-m", "ztp.bench._gateway_proc", url,
                str(cred_file),
            ]  # fmt: skip
            with (
                gw.started(gw_cmd, tmp / "gateway.log") as gwp,
                gw.started([*taskset(server_cpu), stunnel, str(conf)], tmp / "stunnel.log") as st,
            ):
                gw_port = gw.read_port(gwp)
                gw.wait_port(st_port, st)
                servers = {
                    "ztp": (gw_port, tmp / "gateway.ids", gwp.pid, svc.pid),
                    "stunnel": (st_port, tmp / "stunnel.ids", st.pid, backend.pid),
                }
                for i in range(rounds):
                    order = ("ztp", "stunnel") if i % 2 == 0 else ("stunnel", "ztp")
                    for name in order:
                        port, idfile, pid, behind = servers[name]
                        for cli in gw.CLIENTS if i % 2 == 0 else gw.CLIENTS[::-1]:
                            res = gw.measure(exes[cli], port, idfile, pid, behind, args)
                            results[(name, cli)].append(res)
    names = {
        "ztp": "ztp gateway + ztp service serve (SQLite)",
        "stunnel": f"{gw.stunnel_name(stunnel)} + trivial backend",
    }
    return _table(results, names, args, rounds, load_before)


def _table(
    results: dict[tuple[str, str], list[dict[str, float]]],
    names: dict[str, str],
    args: dict[str, object],
    rounds: int,
    load_before: tuple[float, float, float],
) -> Table:
    from . import _gateway as gw

    def med(rows: list[dict[str, float]], f: object) -> float:
        return statistics.median(f(r) for r in rows)  # type: ignore[operator]

    table = Table(
        title=(
            f"Full path (connect + TLS psk_ke/CCM + GET + reply + close): front on CPU "
            f"{args['server_cpu']}, what it forwards to + load generator ({args['threads']} "
            f"connections) on CPU {args['client_cpu']}, median of {rounds} x "
            f"{args['seconds']:g} s per row"
        ),
        columns=[
            "path",
            "client",
            "exchanges/s",
            "vs stunnel (rate)",
            "path CPU-us/ex",
            "front CPU-us/ex",
            "behind CPU-us/ex",
            "p50 ms",
            "p99 ms",
            "failed",
            "front core busy %",
            "client core busy %",
        ],
    )
    medians: dict[str, dict[str, float]] = {}
    for (srv, cli), rows in results.items():
        ok = [max(1, r["ok"]) for r in rows]
        medians[f"{srv}/{cli}"] = {
            "rate": med(rows, lambda r: r["ok"] / r["wall_s"]),
            "path_cpu_us": med(
                rows, lambda r: (r["server_cpu_s"] + r["backend_cpu_s"]) / max(1, r["ok"]) * 1e6
            ),
            "front_cpu_us": med(rows, lambda r: r["server_cpu_s"] / max(1, r["ok"]) * 1e6),
            "behind_cpu_us": med(rows, lambda r: r["backend_cpu_s"] / max(1, r["ok"]) * 1e6),
            "p50_s": med(rows, lambda r: r["p50_s"]),
            "p99_s": med(rows, lambda r: r["p99_s"]),
            "failed": sum(r["fail"] + r["status_not_200"] for r in rows),
            "server_core_busy": med(rows, lambda r: r["server_core_busy"]),
            "client_core_busy": med(rows, lambda r: r["client_core_busy"]),
            "exchanges": sum(ok),
        }
    for srv in ("ztp", "stunnel"):
        for cli in gw.CLIENTS:
            m, ref = medians[f"{srv}/{cli}"], medians[f"stunnel/{cli}"]
            table.rows.append(
                [
                    names[srv],
                    cli,
                    f"{m['rate']:,.0f}",
                    f"{m['rate'] / max(1e-9, ref['rate']):.2f}x",
                    f"{m['path_cpu_us']:,.0f}",
                    f"{m['front_cpu_us']:,.0f}",
                    f"{m['behind_cpu_us']:,.0f}",
                    f"{m['p50_s'] * 1e3:.1f}",
                    f"{m['p99_s'] * 1e3:.1f}",
                    f"{int(m['failed'])}",
                    gw.pct(m["server_core_busy"]),
                    gw.pct(m["client_core_busy"]),
                ]
            )
    table.data = {
        "results": {f"{srv}/{cli}": res for (srv, cli), res in results.items()},
        "medians": medians,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    table.notes += [
        "path CPU-us/ex: CPU of both processes of the path per exchange (front = ztp gateway "
        "or stunnel; behind = ztp service serve on SQLite, or the trivial in-memory backend); "
        "vs stunnel (rate): this row's exchanges/s / stunnel's with the same client (goal of "
        "issue 14 for the full path: >= 1.00x)",
        "the service and the backend share the client core with the load generators: when "
        "that core is saturated, the rate is what the two cores deliver, not the front's limit",
        "clients: openssl = OpenSSL client (psk_ke + psk_dhe_ke offered), gnutls = GnuTLS "
        "client (psk_ke only, no key_share); every ServerHello checked: psk_ke",
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
    ]
    return table
