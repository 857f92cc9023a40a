"""``ztp bench storm``: a fleet boot storm, N virtual SIMs provisioning at once.

Server process (``_storm_server.py``, pinned to ``server_cpu``): the configuration service
(uvicorn, SQLite) and the gateway, as ``ztp serve`` runs them, with the gateway's default limits
(every SIM comes from 127.0.0.1: the carrier-NAT case).

Driver process (this one, pinned to ``driver_cpu``): N ``ztp.sim.VirtualSim`` cards, each
behind its own ``ztp.modem.VirtualModem`` used without a UART or firmware: the modem's
toolkit terminal runs each SIM's BIP channels over real asyncio TCP sockets to the gateway,
and the device's APDUs go straight to ``modem.transmit`` (the AT+CSIM path minus the UART).
The SIMs hold the gateway as an IP literal (no DNS: an operator resolver is not what is
measured). One shared virtual network.

Sequence: import the N SIMs (PSKs) and their configurations through the operator API, start
the N modems, open a channel, SELECT SAFE2 and SET DEVICEID on each; then at t0 send START
CONFIG REQUEST (CA 00) to all N at once. Each SIM is done when its status reads DATA (the
driver watches the card after each APDU instead of polling, so the figures are the server's
and the SIMs', not a poll schedule's), then status (CC 02 + GET RESPONSE) and the body (CA 01
+ GET RESPONSE) are read through APDUs and compared with the configuration set. Completion
= t0 to the last SIM's body read; per-SIM p50/p99 of the same. Failures: a SIM not done by
the deadline, a status other than DATA, or a wrong body. CPU: /proc/PID/stat of both
processes over the storm window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import BenchError, Table, cpu_seconds, percentile, python, taskset

DEVICE_ID = bytes.fromhex("4d4b5247534d31343030000000000001")
BODY = '{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'
_SAFE2_AID = b"\xf0podgsafe2\x01\x01"  # SAFE2-PROTOCOL.md
_STATUS_DATA = 0x0007
_STATUS_DONE = 0x0003
_STATUS_ERROR = 0x000F


def _iccid(i: int) -> str:
    from ztp.iccid import luhn_check_digit

    payload = f"8944{i:014d}"
    return payload + luhn_check_digit(payload)


def _start_server(data_dir: Path, sims: int, cpu: int | None, log_path: Path,
                  ) -> tuple[subprocess.Popen[str], str, int]:
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*taskset(cpu), python(), "-m", "ztp.bench._storm_server", str(data_dir), str(sims)],
        stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    log.close()
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2:
        proc.kill()
        proc.wait()
        tail = log_path.read_text()[-2000:]
        raise BenchError(f"the storm server did not start:\n{tail}")
    return proc, line[0], int(line[1])


def _import(url: str, data_dir: Path, psks: list[bytes]) -> None:
    from ztp.service import ServiceClient

    creds = json.loads((data_dir / "credentials.json").read_text())
    admin = ServiceClient(url, timeout_s=120)
    try:
        admin.login(creds["admin_id"], creds["admin_secret"])
        batch = 5000
        for start in range(0, len(psks), batch):
            rows = range(start, min(len(psks), start + batch))
            csv = "iccid,psk\n" + "".join(f"{_iccid(i)},{psks[i].hex()}\n" for i in rows)
            admin.request("POST", "/v1/sims/import", content=csv,
                          headers={"Content-Type": "text/csv"})
            configs = [{"iccid": _iccid(i), "device_id": DEVICE_ID.hex(), "body": BODY}
                       for i in rows]
            admin.request("POST", "/v1/configs/import", json={"configs": configs})
    finally:
        admin.close()


class _Device:
    """One SIM + modem, driven by APDUs as the firmware would (without the UART)."""

    def __init__(self, index: int, modem: Any, sim: Any) -> None:
        self.index = index
        self.modem = modem
        self.sim = sim
        self.cla = 0
        self.started = False
        self.done = asyncio.Event()
        self.completed_s: float | None = None
        self.error = ""
        modem.observers.append(self._observe)

    def _observe(self, kind: str, info: dict[str, Any]) -> None:
        if kind == "apdu" and self.started and self.sim.state.status in (
                _STATUS_DATA, _STATUS_DONE, _STATUS_ERROR):
            self.done.set()

    async def _apdu(self, apdu: bytes, what: str) -> bytes:
        rsp = await self.modem.transmit(apdu)
        if rsp[-2] == 0x61:  # GET RESPONSE on the same channel (TS 102 221 §7.3.1.1.4)
            rsp = await self.modem.transmit(bytes([self.cla, 0xC0, 0, 0, rsp[-1]]))
        if rsp[-2:] != b"\x90\x00" and rsp[-2] != 0x91:
            raise RuntimeError(f"{what}: expected SW 9000, got {rsp[-2:].hex().upper()}")
        return rsp[:-2]

    async def prepare(self) -> None:
        ch = (await self._apdu(bytes.fromhex("0070000001"), "MANAGE CHANNEL"))[0]
        self.cla = ch if ch < 4 else 0x40 | (ch - 4)
        await self._apdu(bytes([self.cla, 0xA4, 0x04, 0x0C, len(_SAFE2_AID)]) + _SAFE2_AID,
                         "SELECT SAFE2")
        await self._apdu(bytes([self.cla, 0xDA, 0x02, 0xC0, len(DEVICE_ID)]) + DEVICE_ID,
                         "SET DEVICEID")

    async def provision(self, t0: float, deadline_s: float) -> None:
        try:
            self.started = True
            await self._apdu(bytes([self.cla, 0xCA, 0, 0, 0]), "START CONFIG REQUEST")
            await asyncio.wait_for(self.done.wait(), max(0.0, t0 + deadline_s - time.monotonic()))
            status = await self._apdu(bytes([self.cla, 0xCC, 0x02, 0, 0]), "STATUS")
            state, result = int.from_bytes(status[:2], "big"), int.from_bytes(status[2:4], "big")
            if state != _STATUS_DATA or result:
                raise RuntimeError(f"status {state:04X} result {result:04X}")
            body = await self._apdu(bytes([self.cla, 0xCA, 0x01, 0, 0]), "READ CONFIG")
            if body != BODY.encode():
                raise RuntimeError(f"wrong body ({len(body)} bytes)")
            self.completed_s = time.monotonic() - t0
        except TimeoutError:
            self.error = f"not done within {deadline_s:.0f} s"
        except Exception as err:  # a failed SIM is counted, not fatal
            self.error = str(err) or type(err).__name__


async def _storm(port: int, psks: list[bytes], rtt_ms: int, card_cost: bool,
                 deadline_s: float, server_pid: int) -> dict[str, Any]:
    from ztp.modem import LatencyModel, Network, VirtualModem
    from ztp.sim import CardState, CostModel, VirtualSim

    network = Network()
    devices: list[_Device] = []
    cost = CostModel().after_pps()
    latency = LatencyModel(network_rtt_ms=rtt_ms)
    for i, psk in enumerate(psks):
        sim = VirtualSim(CardState.create(_iccid(i), psk, "127.0.0.1", port), cost_model=cost)
        modem = VirtualModem(sim, network=network, latency=latency, apply_card_cost=card_cost)
        devices.append(_Device(i, modem, sim))
    try:
        t_setup = time.monotonic()
        await asyncio.gather(*(d.modem.start() for d in devices))
        await asyncio.gather(*(d.prepare() for d in devices))
        setup_s = time.monotonic() - t_setup
        await asyncio.sleep(0.5)  # let the toolkits settle (TERMINAL PROFILE, idle)
        cpu_srv0, cpu_drv0 = cpu_seconds(server_pid), cpu_seconds(os.getpid())
        t0 = time.monotonic()
        await asyncio.gather(*(d.provision(t0, deadline_s) for d in devices))
        wall = time.monotonic() - t0
        cpu_srv, cpu_drv = cpu_seconds(server_pid) - cpu_srv0, cpu_seconds(os.getpid()) - cpu_drv0
    finally:
        await asyncio.gather(*(d.modem.close() for d in devices), return_exceptions=True)
        await network.close()
    done = [d.completed_s for d in devices if d.completed_s is not None]
    errors: dict[str, int] = {}
    for d in devices:
        if d.completed_s is None:
            errors[d.error] = errors.get(d.error, 0) + 1
    handshakes = sum(d.sim.state.counters.tls_handshakes for d in devices)
    attempts = sum(d.sim.state.counters.attempts for d in devices)
    return {
        "sims": len(devices), "completed": len(done), "failed": len(devices) - len(done),
        "errors": errors, "wall_s": wall, "last_s": max(done) if done else float("nan"),
        "p50_s": percentile(done, 50), "p99_s": percentile(done, 99),
        "handshakes": handshakes, "attempts": attempts, "setup_s": setup_s,
        "server_cpu_s": cpu_srv, "driver_cpu_s": cpu_drv,
    }


def run(sims: int = 1000, rtt_ms: int = 0, card_cost: bool = False,
        server_cpu: int | None = 0, driver_cpu: int | None = 1,
        deadline_s: float = 120.0) -> Table:
    """N SIMs at once through the real gateway + service; see the module docstring."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 4 * sims + 256
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise BenchError(f"{sims} SIMs need ~{need} file descriptors; ulimit -n is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    psks = [os.urandom(16) for _ in range(sims)]
    with tempfile.TemporaryDirectory(prefix="ztp-bench-storm-") as tmp:
        data_dir = Path(tmp)
        proc, url, port = _start_server(data_dir, sims, server_cpu, data_dir / "server.log")
        try:
            t = time.monotonic()
            _import(url, data_dir, psks)
            import_s = time.monotonic() - t
            if driver_cpu is not None and affinity is not None:
                os.sched_setaffinity(0, {driver_cpu})
            try:
                r = asyncio.run(_storm(port, psks, rtt_ms, card_cost, deadline_s, proc.pid))
            finally:
                if affinity is not None:
                    os.sched_setaffinity(0, affinity)
            load = os.getloadavg()[0]
            if r["failed"]:
                r["server_log_tail"] = (data_dir / "server.log").read_text()[-4000:]
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    r["import_s"] = import_s
    r["loadavg_1min"] = load
    wall = r["wall_s"]
    srv_core = "no pinning" if server_cpu is None else f"CPU {server_cpu}"
    drv_core = "no pinning" if driver_cpu is None else f"CPU {driver_cpu}"
    table = Table(
        title=f"Boot storm: {sims:,} SIMs provisioning at once (gateway + service, SQLite)",
        columns=["SIMs", "completed in", "failed", "handshakes/s", "per-SIM p50", "per-SIM p99",
                 "retries", f"server CPU ({srv_core})", f"SIM driver CPU ({drv_core})",
                 "vs goal (0 failures)"],
    )
    table.rows.append([
        f"{sims:,}", f"{wall:.2f} s", f"{r['failed']}", f"{r['handshakes'] / wall:,.0f}",
        f"{r['p50_s']:.2f} s", f"{r['p99_s']:.2f} s", f"{r['attempts'] - r['completed']}",
        f"{r['server_cpu_s']:.1f} s ({100 * r['server_cpu_s'] / wall:.0f}%)",
        f"{r['driver_cpu_s']:.1f} s ({100 * r['driver_cpu_s'] / wall:.0f}%)",
        "met" if r["failed"] == 0 else f"{r['failed']} failed",
    ])
    table.notes += [
        f"server process = service (uvicorn, SQLite) + gateway, as ztp serve, on {srv_core}; "
        f"SIM driver process = {sims} VirtualSim + VirtualModem toolkit cores + asyncio "
        f"sockets, on {drv_core}; CPU % = CPU seconds / storm wall time (100% = one core)",
        "gateway limits at their defaults (all SIMs share 127.0.0.1, the carrier-NAT case: "
        "connection cap, per-address rate and per-identity rate as ztp serve runs them)",
        f"network RTT {rtt_ms} ms, SIM card time {'after-PPS model' if card_cost else 'none'}; "
        "SIMs use the gateway's IP literal (no DNS); handshakes/s = SIM TLS handshakes / "
        f"storm wall time; retries = applet attempts beyond one per SIM; import of {sims:,} "
        f"SIMs + configs {import_s:.1f} s (not in the storm); 1-min load average "
        f"{load:.1f} at the end",
    ]
    if r["errors"]:
        table.notes.append("failures: " + "; ".join(f"{n} x {e}" for e, n in r["errors"].items()))
    table.data = r
    return table


if __name__ == "__main__":  # python -m ztp.bench._storm N
    from ._common import print_table

    print_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
