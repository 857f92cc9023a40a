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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
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


def _measure(
    exe: Path, port: int, idfile: Path, server: int, backend: int, args: dict[str, object]
) -> dict[str, float]:
    _load(exe, port, idfile, int(args["threads"]), float(args["warmup"]), args["client_cpu"])  # type: ignore[arg-type]
    s0, b0 = cpu_seconds(server), cpu_seconds(backend)
    res = _load(exe, port, idfile, int(args["threads"]), float(args["seconds"]), args["client_cpu"])  # type: ignore[arg-type]
    res["server_cpu_s"] = cpu_seconds(server) - s0
    res["backend_cpu_s"] = cpu_seconds(backend) - b0
    if res["dhe"]:
        raise BenchError(f"{res['dhe']} exchanges negotiated psk_dhe_ke, not psk_ke")
    return res


def run(
    seconds: float = 10.0,
    threads: int = 16,
    identities: int = 100,
    server_cpu: int | None = 0,
    client_cpu: int | None = 1,
    warmup: float = 2.0,
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
    }
    ids = _identities(identities)
    results: dict[str, dict[str, float]] = {}
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
            with _started(gw_cmd, tmp / "gateway.log") as gw:
                port = _read_port(gw)
                results["ztp"] = _measure(exe, port, tmp / "gateway.ids", gw.pid, backend.pid, args)
            port = _free_port()
            conf = tmp / "stunnel.conf"
            conf.write_text(
                "foreground = yes\npid =\n[ztp]\n"
                f"accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{backend_port}\n"
                f"PSKsecrets = {secrets}\nsslVersionMin = TLSv1.3\n"
                "ciphersuites = TLS_AES_128_CCM_SHA256\noptions = ALLOW_NO_DHE_KEX\n"
                "curves = prime256v1\n"
            )
            with _started([*taskset(server_cpu), stunnel, str(conf)], tmp / "stunnel.log") as st:
                _wait_port(port, st)
                results["stunnel"] = _measure(
                    exe, port, tmp / "stunnel.ids", st.pid, backend.pid, args
                )
    version = subprocess.run([stunnel, "-version"], capture_output=True, text=True).stderr
    found = re.search(r"stunnel (\d[\w.]*)", version)
    stunnel_name = f"stunnel {found.group(1)}" if found else "stunnel"
    table = Table(
        title=(
            f"Gateway exchanges (connect + TLS psk_ke/CCM + GET + reply + close), server on "
            f"CPU {server_cpu}, load generator ({threads} connections) + backend on CPU "
            f"{client_cpu}, {seconds:g} s"
        ),
        columns=[
            "server",
            "exchanges/s",
            "p50 ms",
            "p99 ms",
            "server CPU-us/ex",
            "server CPU %",
            "loadgen CPU %",
            "backend CPU %",
            "failed",
            "vs stunnel (rate)",
            "vs stunnel (CPU)",
        ],
    )
    ref = results["stunnel"]
    ref_rate = ref["ok"] / ref["wall_s"]
    ref_cpu_us = ref["server_cpu_s"] / max(1, ref["ok"]) * 1e6
    for name, res in (("ztp gateway", results["ztp"]), (stunnel_name.strip(), ref)):
        rate = res["ok"] / res["wall_s"]
        cpu_us = res["server_cpu_s"] / max(1, res["ok"]) * 1e6
        table.rows.append(
            [
                name,
                f"{rate:,.0f}",
                f"{res['p50_s'] * 1e3:.1f}",
                f"{res['p99_s'] * 1e3:.1f}",
                f"{cpu_us:,.0f}",
                f"{100 * res['server_cpu_s'] / res['wall_s']:.0f}",
                f"{100 * res['cpu_s'] / res['wall_s']:.0f}",
                f"{100 * res['backend_cpu_s'] / res['wall_s']:.0f}",
                f"{int(res['fail'] + res['status_not_200'])}",
                f"{rate / ref_rate:.2f}x",
                f"{ref_cpu_us / cpu_us:.2f}x",
            ]
        )
    table.data = {
        "results": results,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    table.notes += [
        "vs stunnel (rate): exchanges/s ratio (goal >= 1.5x); (CPU): stunnel's server "
        "CPU-us per exchange / ours, i.e. exchanges per core-second; CPU % is of one core",
        f"load average before/after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f} "
        "(other processes on the machine share both cores)",
        "all exchanges negotiated psk_ke (every ServerHello checked: no key_share)",
    ]
    return table
