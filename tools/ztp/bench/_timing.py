"""``ztp bench timing``: can a stranger tell known PSK identities from unknown ones by timing?

The probe of issue 13 item 2, as an attacker on the network runs it. Server: service + gateway
as ``ztp serve`` runs them, with the gateway's defaults (``_storm_server.py``; ``--floor``
overrides the gateway's PSK lookup floor, e.g. 0 to see what it hides). N SIMs are imported
(random PSKs); N other well-formed ICCIDs are not. Probe: for each identity, in a shuffled
order, one TCP connection from this process carrying a ClientHello for that identity with a
random key (the prober has no key: every probe ends in ``decrypt_error``, the same bytes on the
wire either way); the time measured is from writing the ClientHello to the first byte of the
answer. Round 1 finds every identity uncached; round 2 comes ``--gap`` seconds later (35 s by
default: past the 30 s for which unknown identities used to stay cached, within the 300 s of
known ones), so it sees what the cache keeps.

Per round: the median of each class, and how well the times separate them: AUC (the chance
that a random known identity answered more slowly than a random unknown one; 0.5 is chance,
0 or 1 a perfect separation) with its two-sided p-value (Mann-Whitney U, normal
approximation). "indistinguishable" means p >= 0.05.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import BenchError, Table, python, taskset

__all__ = ["mann_whitney", "run"]

_FEED_SETTLE_S = 5.0  # > 2 gateway poll intervals


def _iccid(i: int) -> str:
    from ztp.iccid import luhn_check_digit

    payload = f"8949{i:014d}"
    return payload + luhn_check_digit(payload)


def mann_whitney(a: list[float], b: list[float]) -> tuple[float, float]:
    """(AUC, two-sided p) of samples ``a`` vs ``b``: AUC = P(a > b) + P(a == b) / 2, p from
    the normal approximation of U with the tie correction."""
    n1, n2 = len(a), len(b)
    if not n1 or not n2:
        return float("nan"), float("nan")
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return u1 / (n1 * n2), 1.0
    z = (u1 - n1 * n2 / 2) / math.sqrt(var)
    p = math.erfc(abs(z) / math.sqrt(2))
    return u1 / (n1 * n2), p


def _start_server(data_dir: Path, floor_s: float | None, cpu: int | None, log_path: Path,
                  ) -> tuple[subprocess.Popen[str], str, int]:
    args = [str(data_dir), "0"] + ([str(floor_s)] if floor_s is not None else [])
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*taskset(cpu), python(), "-m", "ztp.bench._storm_server", *args],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        proc.wait()
        raise BenchError(f"the server did not start:\n{log_path.read_text()[-2000:]}")
    return proc, line[0], int(line[1])


def _import(url: str, data_dir: Path, count: int) -> None:
    from ztp.service import ServiceClient

    creds = json.loads((data_dir / "credentials.json").read_text())
    admin = ServiceClient(url, timeout_s=120)
    try:
        admin.login(creds["admin_id"], creds["admin_secret"])
        csv = "iccid,psk\n" + "".join(f"{_iccid(i)},{os.urandom(16).hex()}\n"
                                      for i in range(count))
        admin.request("POST", "/v1/sims/import", content=csv,
                      headers={"Content-Type": "text/csv"})
    finally:
        admin.close()


async def _probe(port: int, identity: bytes) -> float:
    """Seconds from our ClientHello to the first byte of the gateway's answer."""
    from ztp.tls import ClientConfig, ClientConnection

    client = ClientConnection(ClientConfig(identity=identity, psk=os.urandom(16)))
    client.start_handshake()
    hello = client.data_to_send()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        started = time.perf_counter()
        writer.write(hello)
        first = await asyncio.wait_for(reader.read(1), 30)
        took = time.perf_counter() - started
        if not first:
            raise BenchError("the gateway closed without an answer (is the service up?)")
        return took
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _round(port: int, known: list[bytes], unknown: list[bytes],
                 rng: random.Random) -> tuple[list[float], list[float]]:
    order = [(i, True) for i in known] + [(i, False) for i in unknown]
    rng.shuffle(order)
    times: dict[bool, list[float]] = {True: [], False: []}
    for identity, is_known in order:  # one at a time: probes do not queue behind each other
        times[is_known].append(await _probe(port, identity))
    return times[True], times[False]


def run(identities: int = 40, gap_s: float = 35.0, floor_s: float | None = None,
        server_cpu: int | None = 0, client_cpu: int | None = 1, seed: int = 13,
        settle_s: float = _FEED_SETTLE_S) -> Table:
    """Probe ``identities`` known and as many unknown identities twice; see the module doc."""
    from ztp.iccid import build_ef_iccid

    rng = random.Random(seed)
    known = [build_ef_iccid(_iccid(i)) for i in range(identities)]
    unknown = [build_ef_iccid(_iccid(i)) for i in range(identities, 2 * identities)]
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    rounds: list[tuple[list[float], list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="ztp-bench-timing-") as tmp:
        data_dir = Path(tmp)
        proc, url, port = _start_server(data_dir, floor_s, server_cpu, data_dir / "server.log")
        try:
            _import(url, data_dir, identities)
            # the import is in the change feed: let the gateway's poller (every 2 s) see it
            # before round 1, or it would drop round 1's known entries before round 2
            time.sleep(settle_s)
            if client_cpu is not None and affinity is not None:
                os.sched_setaffinity(0, {client_cpu})
            try:
                rounds.append(asyncio.run(_round(port, known, unknown, rng)))
                time.sleep(gap_s)
                rounds.append(asyncio.run(_round(port, known, unknown, rng)))
            finally:
                if affinity is not None:
                    os.sched_setaffinity(0, affinity)
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    load = os.getloadavg()[0]
    floor = "the gateway's default" if floor_s is None else f"{floor_s * 1000:g} ms"
    table = Table(
        title=f"Timing probe: {identities} known vs {identities} unknown PSK identities "
              f"(first answer byte after the ClientHello)",
        columns=["round", "known p50 ms", "unknown p50 ms", "difference ms", "AUC", "p",
                 "vs chance (AUC 0.5)"],
    )  # fmt: skip
    data: dict[str, Any] = {"identities": identities, "gap_s": gap_s, "floor_s": floor_s,
                            "loadavg_1min": load, "rounds": []}
    for name, (k, u) in zip(("1: uncached", f"2: {gap_s:g} s later"), rounds, strict=True):
        k_ms, u_ms = [1000 * t for t in k], [1000 * t for t in u]
        auc, p = mann_whitney(k_ms, u_ms)
        mk, mu = _median(k_ms), _median(u_ms)
        table.rows.append([
            name, f"{mk:.2f}", f"{mu:.2f}", f"{mk - mu:+.2f}", f"{auc:.2f}", f"{p:.3f}",
            "indistinguishable" if p >= 0.05 else "DISTINGUISHABLE",
        ])  # fmt: skip
        data["rounds"].append({"round": name, "known_ms": k_ms, "unknown_ms": u_ms,
                               "auc": auc, "p": p})
    table.notes += [
        "server = service (uvicorn, SQLite) + gateway as ztp serve runs them, defaults, "
        f"PSK lookup floor {floor}; one probe at a time from 127.0.0.1, order shuffled "
        f"(seed {seed}); a random key each time, so every probe ends in decrypt_error",
        "AUC = P(a known identity answered more slowly than an unknown one); p: two-sided "
        "Mann-Whitney U; indistinguishable = p >= 0.05. 1-min load average "
        f"{load:.1f} at the end",
    ]
    table.data = data
    return table


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan")
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
