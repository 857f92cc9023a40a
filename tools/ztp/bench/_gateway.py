"""``ztp bench gateway``: full exchanges, our gateway vs stunnel vs an OpenSSL floor, two clients.

Exchange = TCP connect + TLS 1.3 psk_ke / TLS_AES_128_CCM_SHA256 handshake + GET + reply +
close. Every server is driven by two independent client stacks, each a C load generator
pinned to the other core: OpenSSL (``_c_loadgen``) and GnuTLS (``_c_gnutls``). The servers
run pinned to one core, the ztp gateway and stunnel in front of the same backend
(``_backend``: the service's gateway API from a table in memory, pinned beside the load
generators), and are measured the same way: CPU seconds of the server process from
/proc/PID/stat (all threads) over the measured window, divided by the exchanges completed
(the primary figure: exchanges per server core-second do not depend on the client's speed).

- ztp gateway: ``_gateway_proc`` (the production Gateway + ServiceClient: PSK cache warm,
  key lookups not on the hot path after warm-up, request checked and forwarded over its
  keep-alive h11 client with its bearer token; psk_ke only, rate limits raised).
- stunnel: TLS 1.3 only, ``ciphersuites = TLS_AES_128_CCM_SHA256``,
  ``options = ALLOW_NO_DHE_KEX``, PSKsecrets file, ``curves = prime256v1`` (the OpenSSL client
  offers x25519: with no common group and ALLOW_NO_DHE_KEX the server picks psk_ke; the load
  generators check every ServerHello), one new TCP connection to the backend per client,
  ``syslog = no`` (see ``stunnel_conf``: this was the 10x). stunnel identities are text (it
  cannot hold binary ones): the 20-character hex of the 10-byte EF_ICCID; same 16-byte keys.
- floor: ``openssl s_server -WWW`` with one of the same PSKs (one identity), answering the
  same body from a file: what OpenSSL alone costs per exchange, no forwarding.
Gateway and stunnel log at their default level (info JSON lines; notice) to a file.

Trust. A ratio to stunnel is printed only when the two clients agree about each server
within 1.5x (server CPU-us/ex) and no client core was >= 95% busy; otherwise the cell says
"refused" and a note says why. All servers run for the whole benchmark (the idle ones cost
nothing) and ``rounds`` measured windows per (server, client) alternate their order, so a
change in the machine's background load hits every row alike; the table shows medians, the
JSON every round. Each window reads /proc/stat for the two cores (busy share, all processes).
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

from ._backend import BODY
from ._c_gnutls import GNUTLS_LOADGEN_C
from ._c_loadgen import LOADGEN_C
from ._common import BenchError, Table, build_c, cpu_seconds, python, taskset


def sims(n: int) -> list[tuple[bytes, str, bytes]]:
    """n distinct SIMs: (EF_ICCID, ICCID digits: 8944502509 + serial + Luhn digit, random PSK)."""
    from ztp.iccid import build_ef_iccid, luhn_check_digit

    out = []
    for i in range(n):
        payload = "89445025091" + f"{i:07d}"
        iccid = payload + luhn_check_digit(payload)
        out.append((build_ef_iccid(iccid), iccid, os.urandom(16)))
    return out


def write_id_files(tmp: Path, ids: list[tuple[bytes, bytes]]) -> None:
    """The identity files of the backend, the load generators and stunnel, in ``tmp``."""
    # backend table: identity hex -> psk (for the gateway's lookups)
    (tmp / "backend.ids").write_text("".join(f"{i.hex()} {k.hex()}\n" for i, k in ids))
    # load generator: identity bytes (hex), psk (hex), iccid query parameter
    (tmp / "gateway.ids").write_text("".join(f"{i.hex()} {k.hex()} {i.hex()}\n" for i, k in ids))
    # stunnel identities are text: the 20-character hex of the EF_ICCID
    (tmp / "stunnel.ids").write_text(
        "".join(f"{i.hex().encode().hex()} {k.hex()} {i.hex()}\n" for i, k in ids)
    )
    secrets = tmp / "psk.txt"
    secrets.touch(0o600)
    secrets.write_text("".join(f"{i.hex()}:{k.hex()}\n" for i, k in ids))


def tools() -> tuple[str, dict[str, Path]]:
    """stunnel's path and the two load generators (built once), or a BenchError saying what
    to install."""
    stunnel = shutil.which("stunnel4") or shutil.which("stunnel")
    if stunnel is None:
        raise BenchError("stunnel not found: apt-get install stunnel4")
    if shutil.which("openssl") is None:
        raise BenchError("openssl not found: apt-get install openssl")
    return stunnel, {
        "openssl": build_c("loadgen", LOADGEN_C, ("-lssl", "-lcrypto")),
        "gnutls": build_c("loadgen-gnutls", GNUTLS_LOADGEN_C, ("-lgnutls",)),
    }


def stunnel_name(stunnel: str) -> str:
    version = subprocess.run([stunnel, "-version"], capture_output=True, text=True).stderr
    found = re.search(r"stunnel (\d[\w.]*)", version)
    return f"stunnel {found.group(1)}" if found else "stunnel"


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise BenchError(f"nothing listening on port {port} after {timeout_s} s")


def read_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        raise BenchError(f"{proc.args!r} did not print its port (exit {proc.poll()})")
    return int(line)


@contextlib.contextmanager
def started(
    cmd: list[str], log: Path, *, port_on_stdout: bool = True, **kw: object
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` for the ``with`` block (SIGTERM after), stderr to ``log``. Its stdout is a
    pipe only when it prints its port there (``read_port``), which is all it may print: a pipe
    nobody reads blocks the child once 64 KiB are in it (uvicorn's access log goes to stdout).
    Otherwise stdout goes to ``log`` too."""
    with open(log, "wb") as err:
        out = subprocess.PIPE if port_on_stdout else err
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kw)  # type: ignore[call-overload]
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


def measure(
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
                "fail": res["fail"],
            }
        )
    out = {k: statistics.median(p[k] for p in per) for k in per[0]}
    out["failed"] = sum(p["failed"] for p in per)
    out["fail"] = sum(p["fail"] for p in per)
    return out


CLIENTS = ("openssl", "gnutls")
SERVERS = ("ztp", "stunnel", "s_server")
DISAGREE = 1.5  # max ratio between the two clients' server CPU-us/ex for the same server
SATURATED = 0.95  # client core busy share from which a ratio is not printed


def stunnel_conf(port: int, backend_port: int, secrets: Path) -> str:
    """stunnel's config. ``syslog = no``: stunnel logs through syslog(3) besides stderr, and
    with no /dev/log glibc falls back to writing every line to /dev/console, a 9600-baud
    serial console on this VM: 3 lines per exchange cost ~100 ms of latency and kernel time
    with interrupts off that lands on whatever runs (the load generator too). That, not the
    curves or the PSKsecrets count, made stunnel measure 10x slow here (issue 14)."""
    return (
        "foreground = yes\npid =\nsyslog = no\n[ztp]\n"
        f"accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
        f"PSKsecrets = {secrets}\nsslVersionMin = TLSv1.3\n"
        "ciphersuites = TLS_AES_128_CCM_SHA256\noptions = ALLOW_NO_DHE_KEX\n"
        "curves = prime256v1\n"
    )


def _s_server_cmd(port: int, identity_text: str, psk: bytes) -> list[str]:
    """``openssl s_server -WWW``: the floor (one process, no backend, files from its cwd)."""
    return [
        "openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-nocert",
        "-psk", psk.hex(), "-psk_identity", identity_text, "-tls1_3",
        "-ciphersuites", "TLS_AES_128_CCM_SHA256", "-allow_no_dhe_kex", "-groups", "P-256",
        "-num_tickets", "0", "-quiet", "-WWW",
    ]  # fmt: skip


def run(
    seconds: float = 10.0,
    threads: int = 6,
    identities: int = 100,
    server_cpu: int | None = 0,
    client_cpu: int | None = 1,
    warmup: float = 2.0,
    rounds: int = 3,
) -> Table:
    stunnel, exes = tools()
    args: dict[str, object] = {
        "threads": threads,
        "seconds": seconds,
        "warmup": warmup,
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
    }
    if rounds < 1:
        raise BenchError("rounds must be >= 1")
    ids = [(ef, psk) for ef, _, psk in sims(identities)]
    results: dict[tuple[str, str], list[dict[str, float]]] = {
        (srv, cli): [] for srv in SERVERS for cli in CLIENTS
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ztp-bench-gw-") as tmp_name:
        tmp = Path(tmp_name)
        write_id_files(tmp, ids)
        secrets = tmp / "psk.txt"
        # s_server holds one text identity; -WWW serves the request path as a file
        floor_id, floor_psk = ids[0][0].hex(), ids[0][1]
        (tmp / "s_server.ids").write_text(
            f"{floor_id.encode().hex()} {floor_psk.hex()} {floor_id}\n"
        )
        www = tmp / "www"
        (www / "v1" / "config").mkdir(parents=True)
        (www / "v1" / "config" / f"000102030405060708090a0b0c0d0e0f?iccid={floor_id}").write_bytes(
            BODY
        )
        backend_cmd = [*taskset(client_cpu), python(), "-m", "ztp.bench._backend"]
        with started([*backend_cmd, str(tmp / "backend.ids")], tmp / "backend.log") as backend:
            backend_port = read_port(backend)
            url = f"http://127.0.0.1:{backend_port}"
            gw_cmd = [*taskset(server_cpu), python(), "-m", "ztp.bench._gateway_proc", url]
            st_port, ss_port = free_port(), free_port()
            conf = tmp / "stunnel.conf"
            conf.write_text(stunnel_conf(st_port, backend_port, secrets))
            st_cmd = [*taskset(server_cpu), stunnel, str(conf)]
            ss_cmd = [*taskset(server_cpu), *_s_server_cmd(ss_port, floor_id, floor_psk)]
            with (
                started(gw_cmd, tmp / "gateway.log") as gw,
                started(st_cmd, tmp / "stunnel.log") as st,
                started(ss_cmd, tmp / "s_server.log", cwd=www) as ss,
            ):
                gw_port = read_port(gw)
                wait_port(st_port, st)
                wait_port(ss_port, ss)
                servers = {
                    "ztp": (gw_port, tmp / "gateway.ids", gw.pid),
                    "stunnel": (st_port, tmp / "stunnel.ids", st.pid),
                    "s_server": (ss_port, tmp / "s_server.ids", ss.pid),
                }
                for i in range(rounds):
                    # the order alternates (ztp, stunnel, s_server, then reversed, ...) and so
                    # do the clients: drift in background load hits every row alike
                    order = SERVERS if i % 2 == 0 else SERVERS[::-1]
                    for name in order:
                        port, idfile, pid = servers[name]
                        for cli in CLIENTS if i % 2 == 0 else CLIENTS[::-1]:
                            res = measure(exes[cli], port, idfile, pid, backend.pid, args)
                            results[(name, cli)].append(res)
    names = {
        "ztp": "ztp gateway",
        "stunnel": stunnel_name(stunnel),
        "s_server": "openssl s_server -WWW (floor)",
    }
    return _table(results, names, args, rounds, load_before)


def _table(
    results: dict[tuple[str, str], list[dict[str, float]]],
    names: dict[str, str],
    args: dict[str, object],
    rounds: int,
    load_before: tuple[float, float, float],
) -> Table:
    """Rows per (server, client); a ratio only where both clients agree and had headroom."""
    summary = {key: _summary(res) for key, res in results.items()}
    table = Table(
        title=(
            f"Gateway exchanges (connect + TLS psk_ke/CCM + GET + reply + close), server on "
            f"CPU {args['server_cpu']}, load generator ({args['threads']} connections) + backend "
            f"on CPU {args['client_cpu']}, median of {rounds} x {args['seconds']:g} s per row"
        ),
        columns=[
            "server",
            "client",
            "server CPU-us/ex",
            "vs stunnel (CPU)",
            "exchanges/s",
            "p50 ms",
            "p99 ms",
            "server CPU %",
            "loadgen CPU-us/ex",
            "backend CPU %",
            "failed",
            "server core busy %",
            "client core busy %",
        ],
    )

    # clients disagreeing about a server: the harness, not the server, is being measured
    disagree = {}
    for srv in SERVERS:
        a, b = (summary[(srv, cli)]["server_cpu_us"] for cli in CLIENTS)
        disagree[srv] = max(a, b) / max(1e-9, min(a, b))
    refused: list[str] = []
    for srv in SERVERS:
        for cli in CLIENTS:
            med = summary[(srv, cli)]
            ref = summary[("stunnel", cli)]
            why = []
            if disagree[srv] > DISAGREE or disagree["stunnel"] > DISAGREE:
                why.append("clients disagree")
            if med["client_core_busy"] >= SATURATED or ref["client_core_busy"] >= SATURATED:
                why.append("client core saturated")
            ratio = f"{ref['server_cpu_us'] / med['server_cpu_us']:.2f}x"
            if why:
                refused.append(f"{names[srv]} / {cli}: {', '.join(why)}")
                ratio = "refused"
            failed = int(med["failed"])
            if srv == "s_server":
                failed = int(med["fail"])  # its HTTP/1.0 answer is the floor's, not a failure
            table.rows.append(
                [
                    names[srv],
                    cli,
                    f"{med['server_cpu_us']:,.0f}",
                    ratio,
                    f"{med['rate']:,.0f}",
                    f"{med['p50_s'] * 1e3:.1f}",
                    f"{med['p99_s'] * 1e3:.1f}",
                    pct(med["server_cpu_share"]),
                    f"{med['loadgen_cpu_us']:,.0f}",
                    pct(med["backend_cpu_share"]),
                    f"{failed}",
                    pct(med["server_core_busy"]),
                    pct(med["client_core_busy"]),
                ]
            )
    table.data = {
        "results": {f"{srv}/{cli}": res for (srv, cli), res in results.items()},
        "medians": {f"{srv}/{cli}": med for (srv, cli), med in summary.items()},
        "client_disagreement": disagree,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    table.notes += [
        "server CPU-us/ex (the primary figure): CPU of the server process (all threads) per "
        "exchange; vs stunnel (CPU): stunnel's figure with the same client / this row's, i.e. "
        "exchanges per server core-second (goal for ztp gateway: >= 1.5x with both clients)",
        "clients: openssl = OpenSSL client (offers psk_ke + psk_dhe_ke with an x25519 share; "
        "the servers pick psk_ke), gnutls = GnuTLS client (psk_ke only, no key_share)",
        "floor: openssl s_server -WWW, one identity, serves the body from a file (no "
        "backend), single-threaded; HTTP/1.0 answers",
        "clients' disagreement (max/min server CPU-us/ex): "
        + ", ".join(f"{names[s]} {disagree[s]:.2f}" for s in SERVERS)
        + f"; a ratio is refused above {DISAGREE}x or with a client core >= "
        f"{100 * SATURATED:.0f}% busy",
        "core busy %: share of the pinned core busy with anything (other processes too); "
        "the backend shares the client core",
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
        "all exchanges negotiated psk_ke (every ServerHello checked: no key_share)",
    ]
    if refused:
        table.notes.append("ratio refused: " + "; ".join(refused))
    return table
