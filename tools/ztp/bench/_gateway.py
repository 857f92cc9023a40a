"""``ztp bench gateway``: full exchanges per second, our gateway vs stunnel, one core each.

Exchange = TCP connect + TLS 1.3 psk_ke / TLS_AES_128_CCM_SHA256 handshake + GET + reply +
close, driven by the C load generator (``_c_loadgen``, OpenSSL client threads) pinned to the
other core. Both servers run pinned to one core in turn, in front of the same backend
(``_backend``: the service's gateway API from a table in memory, pinned beside the load
generator), and are measured the same way: CPU seconds of the server process from
/proc/PID/stat (all threads) over the measured window, divided by the exchanges completed.

- ztp gateway: ``_gateway_proc`` (the production Gateway + ServiceClient: PSK cache warm,
  key lookups not on the hot path after warm-up, request checked and forwarded over its
  keep-alive httpx pool with its bearer token; psk_ke only, rate limits raised).
- stunnel: TLS 1.3 only, ``ciphersuites = TLS_AES_128_CCM_SHA256``,
  ``options = ALLOW_NO_DHE_KEX``, PSKsecrets file, ``curves = prime256v1`` (the OpenSSL client
  offers x25519: with no common group and ALLOW_NO_DHE_KEX the server picks psk_ke; the load
  generator checks every ServerHello), one new TCP connection to the backend per client.
  stunnel identities are text (it cannot hold binary ones): the 20-character hex of the
  10-byte EF_ICCID; the keys are the same 16 bytes.
Both log at their default level (gateway: info JSON lines; stunnel: notice) to a file.

Fairness. Both servers run side by side for the whole benchmark (the idle one costs nothing),
and ``rounds`` measured windows per server alternate their order (ztp, stunnel, stunnel, ztp,
...), so a change in the machine's background load hits both alike; the table shows medians,
the JSON every round. Each window also reads /proc/stat for the two cores (busy share, all
processes): the client core must keep headroom, or the rate would measure the client; a
saturated client core is flagged. The load generator runs the same code against both (same
syscalls per exchange: verified with strace); it reports its CPU per exchange, which is higher
against stunnel (docs/bench.md says what we found).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ._c_loadgen import LOADGEN_C
from ._common import BenchError, Table, build_c, cpu_seconds, python, taskset


def _identities(n: int) -> list[tuple[bytes, bytes]]:
    """n distinct EF_ICCID values (8944502509 + serial + Luhn digit) with random keys."""
    from ztp.iccid import build_ef_iccid, luhn_check_digit

    out = []
    for i in range(n):
        payload = "89445025091" + f"{i:07d}"
        out.append((build_ef_iccid(payload + luhn_check_digit(payload)), os.urandom(16)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listening on port {port} after {timeout_s} s")


def _read_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        raise BenchError(f"{proc.args!r} did not print its port (exit {proc.poll()})")
    return int(line)


@contextlib.contextmanager
def _started(cmd: list[str], log: Path, **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, **kw)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _load(
    exe: Path, port: int, idfile: Path, threads: int, seconds: float, cpu: int | None
) -> dict[str, float]:
    cmd = [*taskset(cpu), str(exe), "127.0.0.1", str(port), str(idfile), str(threads), str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    if proc.returncode != 0:
        raise BenchError(f"load generator failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)


def _core_times() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat (busy = all but idle and iowait)."""
    out = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks = [int(v) for v in vals[:8]]
                out[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def _busy(before: dict[int, tuple[int, int]], cpu: int | None) -> float:
    """Busy share of ``cpu`` since ``before`` (nan when not pinned or unknown)."""
    after = _core_times()
    if cpu is None or cpu not in before or cpu not in after:
        return float("nan")
    busy, total = (a - b for a, b in zip(after[cpu], before[cpu], strict=True))
    return busy / total if total else float("nan")


def _measure(
    exe: Path, port: int, idfile: Path, server: int, backend: int, args: dict[str, object]
) -> dict[str, float]:
    _load(exe, port, idfile, int(args["threads"]), float(args["warmup"]), args["client_cpu"])  # type: ignore[arg-type]
    s0, b0, cores = cpu_seconds(server), cpu_seconds(backend), _core_times()
    res = _load(exe, port, idfile, int(args["threads"]), float(args["seconds"]), args["client_cpu"])  # type: ignore[arg-type]
    res["server_cpu_s"] = cpu_seconds(server) - s0
    res["backend_cpu_s"] = cpu_seconds(backend) - b0
    res["server_core_busy"] = _busy(cores, args["server_cpu"])  # type: ignore[arg-type]
    res["client_core_busy"] = _busy(cores, args["client_cpu"])  # type: ignore[arg-type]
    if res["dhe"]:
        raise BenchError(f"{res['dhe']} exchanges negotiated psk_dhe_ke, not psk_ke")
    return res


def _summary(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Per-round figures, then the median of each over the rounds."""
    per = []
    for res in rounds:
        ok = max(1, res["ok"])
        per.append(
            {
                "rate": res["ok"] / res["wall_s"],
                "p50_s": res["p50_s"],
                "p99_s": res["p99_s"],
                "server_cpu_us": res["server_cpu_s"] / ok * 1e6,
                "server_cpu_share": res["server_cpu_s"] / res["wall_s"],
                "loadgen_cpu_us": res["cpu_s"] / ok * 1e6,
                "backend_cpu_share": res["backend_cpu_s"] / res["wall_s"],
                "server_core_busy": res["server_core_busy"],
                "client_core_busy": res["client_core_busy"],
                "failed": res["fail"] + res["status_not_200"],
            }
        )
    out = {k: statistics.median(p[k] for p in per) for k in per[0]}
    out["failed"] = sum(p["failed"] for p in per)
    return out


def run(
    seconds: float = 10.0,
    threads: int = 16,
    identities: int = 100,
    server_cpu: int | None = 0,
    client_cpu: int | None = 1,
    warmup: float = 2.0,
    rounds: int = 3,
) -> Table:
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if stunnel is None:
        raise BenchError("stunnel not found: apt-get install stunnel4")
    exe = build_c("loadgen", LOADGEN_C, ("-lssl", "-lcrypto"))
    args: dict[str, object] = {
        "threads": threads,
        "seconds": seconds,
        "warmup": warmup,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }
    if rounds < 1:
        raise BenchError("rounds must be >= 1")
    ids = _identities(identities)
    results: dict[str, list[dict[str, float]]] = {"ztp": [], "stunnel": []}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ztp-bench-gw-") as tmp_name:
        tmp = Path(tmp_name)
        # backend table: identity hex -> psk (for the gateway's lookups)
        (tmp / "backend.ids").write_text("".join(f"{i.hex()} {k.hex()}\n" for i, k in ids))
        # load generator: identity bytes (hex), psk (hex), iccid query parameter
        (tmp / "gateway.ids").write_text(
            "".join(f"{i.hex()} {k.hex()} {i.hex()}\n" for i, k in ids)
        )
        (tmp / "stunnel.ids").write_text(
            "".join(f"{i.hex().encode().hex()} {k.hex()} {i.hex()}\n" for i, k in ids)
        )
        secrets = tmp / "psk.txt"
        secrets.write_text("".join(f"{i.hex()}:{k.hex()}\n" for i, k in ids))
        secrets.chmod(0o600)
        backend_cmd = [*taskset(client_cpu), python(), "-m", "ztp.bench._backend"]
        with _started([*backend_cmd, str(tmp / "backend.ids")], tmp / "backend.log") as backend:
            backend_port = _read_port(backend)
            url = f"http://127.0.0.1:{backend_port}"
            gw_cmd = [*taskset(server_cpu), python(), "-m", "ztp.bench._gateway_proc", url]
            st_port = _free_port()
            conf = tmp / "stunnel.conf"
            conf.write_text(
                "foreground = yes\npid =\n[ztp]\n"
                f"accept = 127.0.0.1:{st_port}\nconnect = 127.0.0.1:{backend_port}\n"
                f"PSKsecrets = {secrets}\nsslVersionMin = TLSv1.3\n"
                "ciphersuites = TLS_AES_128_CCM_SHA256\noptions = ALLOW_NO_DHE_KEX\n"
                "curves = prime256v1\n"
            )
            st_cmd = [*taskset(server_cpu), stunnel, str(conf)]
            with (
                _started(gw_cmd, tmp / "gateway.log") as gw,
                _started(st_cmd, tmp / "stunnel.log") as st,
            ):
                gw_port = _read_port(gw)
                _wait_port(st_port, st)
                servers = {
                    "ztp": (gw_port, tmp / "gateway.ids", gw.pid),
                    "stunnel": (st_port, tmp / "stunnel.ids", st.pid),
                }
                for i in range(rounds):
                    # ztp, stunnel, stunnel, ztp, ...: drift in background load hits both
                    for name in ("ztp", "stunnel") if i % 2 == 0 else ("stunnel", "ztp"):
                        port, idfile, pid = servers[name]
                        results[name].append(_measure(exe, port, idfile, pid, backend.pid, args))
    version = subprocess.run([stunnel, "-version"], capture_output=True, text=True).stderr
    found = re.search(r"stunnel (\d[\w.]*)", version)
    stunnel_name = f"stunnel {found.group(1)}" if found else "stunnel"
    table = Table(
        title=(
            f"Gateway exchanges (connect + TLS psk_ke/CCM + GET + reply + close), server on "
            f"CPU {server_cpu}, load generator ({threads} connections) + backend on CPU "
            f"{client_cpu}, median of {rounds} x {seconds:g} s per server"
        ),
        columns=[
            "server",
            "exchanges/s",
            "p50 ms",
            "p99 ms",
            "server CPU-us/ex",
            "server CPU %",
            "loadgen CPU-us/ex",
            "backend CPU %",
            "failed",
            "vs stunnel (rate)",
            "vs stunnel (CPU)",
            "server core busy %",
            "client core busy %",
        ],
    )
    summary = {name: _summary(res) for name, res in results.items()}
    ref = summary["stunnel"]

    def pct(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{100 * x:.0f}"

    for name, med in (("ztp gateway", summary["ztp"]), (stunnel_name.strip(), ref)):
        table.rows.append(
            [
                name,
                f"{med['rate']:,.0f}",
                f"{med['p50_s'] * 1e3:.1f}",
                f"{med['p99_s'] * 1e3:.1f}",
                f"{med['server_cpu_us']:,.0f}",
                pct(med["server_cpu_share"]),
                f"{med['loadgen_cpu_us']:,.0f}",
                pct(med["backend_cpu_share"]),
                f"{int(med['failed'])}",
                f"{med['rate'] / ref['rate']:.2f}x",
                f"{ref['server_cpu_us'] / med['server_cpu_us']:.2f}x",
                pct(med["server_core_busy"]),
                pct(med["client_core_busy"]),
            ]
        )
    table.data = {
        "results": results,
        "medians": summary,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    table.notes += [
        "vs stunnel (rate): exchanges/s ratio (goal >= 1.5x); (CPU): stunnel's server "
        "CPU-us per exchange / ours, i.e. exchanges per core-second; CPU % is of one core",
        "core busy %: share of the pinned core busy with anything (other processes too); "
        "the backend shares the client core",
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        "(other processes on the machine share both cores)",
        "all exchanges negotiated psk_ke (every ServerHello checked: no key_share)",
    ]
    saturated = [n for n, m in summary.items() if m["client_core_busy"] >= 0.95]
    if saturated:
        table.notes.append(
            f"client core >= 95% busy while measuring {', '.join(saturated)}: that rate is "
            "a lower bound (the client side, not the server, may have been the limit)"
        )
    return table
