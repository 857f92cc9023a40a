"""``ztp bench provision``: time to provision in the simulator vs the floor of its own model.

One ``ztp.demo.Stack`` per scenario (service + gateway on loopback, virtual SARA-U201 with the
UART paced at ``uart_baud``, virtual SIM with its ``CostModel``, network RTT from the modem's
``LatencyModel``), then the firmware's own ``lib/`` through pyserial on the pty, ``runs``
times per poll schedule, each run with a fresh device config directory (so each one applies).

Measured: firmware start (its first log line) to "configuration applied" (its log line), and
"SIM done": from the START CONFIG REQUEST APDU (CA 00) to the end of the APDU after which
the card's status reads DATA (0007). The firmware sees it at its next poll: the gap is the
poll schedule's lag.

Floor (docs/bench.md), from the same model's parameters, for the run's own sizes:

    floor = n_rtt * rtt                                  (DNS 1 + TCP 1 + TLS 1 + HTTP 1)
          + sum over the 8 device APDUs of (cost.apdu_ms(cmd, rsp) + UART time of the
            AT+CSIM line and its +CSIM/OK reply at uart_baud, 10 bits a byte)
          + SIM crypto (the applet's SHA-256 / AES block charges, at the model's ms per block)
          + BIP payload across the SIM interface (DNS, TLS and HTTP bytes, each once, at the
            card's bit rate, 12 etu a byte, no framing)

The 8 device APDUs: MANAGE CHANNEL open, SELECT SAFE2, SET DEVICEID, CA 00, one status poll
(CC 02 + GET RESPONSE), CA 01 + GET RESPONSE (SAFE2-PROTOCOL.md lists C0 after the select
instead of SET DEVICEID: same count). Not in the floor: the firmware's modem start (AT, ATE0,
CMEE, CPIN?, CREG?, CCID), the channel close, the toolkit's framing APDUs (FETCH, TERMINAL
RESPONSE, ENVELOPE headers and their per-APDU overhead), server time.

Reference: the reference sketch polls every 10 s: the same stack with the firmware's
schedule set to a fixed 10 s (``reference="run"``), or computed from the default-schedule
runs (``reference="compute"``: time to CA 00 + the first multiple of 10 s at or after "SIM
done" + the time from the detecting poll to "applied").
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._common import Table

_STATUS_DATA = 0x0007
_INS_GET_DATA = 0xCA
_INS_STATUS = 0xCC
_INS_GET_RESPONSE = 0xC0
_INS_MANAGE_CHANNEL = 0x70
N_RTT_WITH_DNS = 4  # DNS query, TCP connect, TLS flight, HTTP flight (SAFE2-PROTOCOL.md)


@dataclass(frozen=True)
class Scenario:
    name: str
    pps: bool  # card after PPS (F=512 D=16, 111.6 kbit/s) or at 9600 bit/s
    rtt_ms: int
    uart_baud: int = 115200


SCENARIOS = (
    Scenario("PPS, RTT 50 ms", True, 50),
    Scenario("PPS, RTT 600 ms", True, 600),
    Scenario("9600 bit/s, RTT 50 ms", False, 50),
    Scenario("9600 bit/s, RTT 600 ms", False, 600),
)

# name -> the firmware's provision.Options fields to set (None: the firmware's default)
DEFAULT = "firmware (500 ms, then 250 ms; x1.5 to 8 s after 15 s)"
PREVIOUS = "previous (500 ms x1.5 to 8 s)"
FIXED_10S = "reference sketch (10 s fixed)"
SCHEDULES: dict[str, dict[str, int] | None] = {
    DEFAULT: None,
    PREVIOUS: {"poll_first_ms": 500, "poll_fast_ms": 0, "poll_max_ms": 8000},
    FIXED_10S: {"poll_first_ms": 10_000, "poll_fast_ms": 0, "poll_max_ms": 10_000},
}


def parse_schedule(text: str) -> tuple[str, dict[str, int]]:
    """``FIRST,INTERVAL`` (ms): a first wait, then a fixed interval (extra rows to compare)."""
    first, _, every = text.partition(",")
    fields = {"poll_first_ms": int(first), "poll_ms": int(every or first),
              "poll_fast_ms": 10**9, "poll_max_ms": 10**9}
    return f"{fields['poll_first_ms']} ms, then {fields['poll_ms']} ms fixed", fields


@contextlib.contextmanager
def _firmware_schedule(fields: dict[str, int] | None) -> Iterator[None]:
    """Set poll schedule fields of the firmware's ``provision.Options`` for the runs inside
    (the bench runs one provisioning at a time; the class is restored afterwards)."""
    if not fields:
        yield
        return
    from ztp.device import load_firmware

    prov = load_firmware()["provision"]
    base = prov.Options
    unknown = [k for k in fields if not hasattr(base(), k)]
    if unknown:
        raise ValueError(f"provision.Options has no {unknown}")

    class _Options(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for k, v in fields.items():
                setattr(self, k, v)

    prov.Options = _Options
    try:
        yield
    finally:
        prov.Options = base


def _csim_uart_bytes(cmd_len: int, rsp_len: int) -> int:
    """Bytes on the UART for one AT+CSIM exchange (no echo: the firmware sends ATE0)."""
    line = len(f'AT+CSIM={2 * cmd_len},""\r') + 2 * cmd_len
    reply = len(f'\r\n+CSIM: {2 * rsp_len},""\r\n\r\nOK\r\n') + 2 * rsp_len
    return line + reply


@dataclass
class _Run:
    total_s: float
    to_start_s: float  # firmware start -> CA 00 sent
    sim_done_s: float  # CA 00 -> SIM status DATA
    detect_to_applied_s: float  # the poll that saw DATA -> applied
    lag_s: float  # SIM done -> the poll that saw it
    polls: int
    device_apdus: list[tuple[int, int]]
    crypto_ms: float
    bip_bytes: int
    name: str
    dns: bool  # the SIM resolved the gateway's name (a UDP channel) in this run
    toolkit_apdus: int  # FETCH / TERMINAL RESPONSE / ENVELOPE from CA 00 to SIM done
    toolkit_card_ms: float  # their card time (transfer + per-APDU overhead, no crypto)


class _Recorder:
    """Stack listener: timestamps of the firmware's log lines and the card's APDUs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stack: Any = None
        self.reset()

    def reset(self) -> None:
        self.t_first: float | None = None
        self.t_applied: float | None = None
        self.t_start: float | None = None
        self.t_done: float | None = None
        self.t_detect: float | None = None
        self.host: list[tuple[bytes, bytes]] = []
        self.crypto_ms = 0.0
        self.bip_bytes = 0
        self.dns = False
        self.toolkit_apdus = 0
        self.toolkit_card_ms = 0.0

    def __call__(self, ev: Any) -> None:
        now = time.monotonic()
        if self.stack is None:  # still starting
            return
        if ev.source == "device" and ev.kind == "log":
            text = ev.info.get("text", "")
            if self.t_first is None:
                self.t_first = now
            if text.startswith("configuration applied"):
                self.t_applied = now
            return
        if ev.source == "modem" and ev.kind == "link":
            if ev.info.get("event") == "open" and "UDP" in str(ev.info.get("transport")):
                self.dns = True
            if ev.info.get("event") in ("send", "receive"):
                self.bip_bytes += int(ev.info.get("size", 0))
            return
        if ev.source != "modem" or ev.kind != "apdu":
            return
        cmd, rsp = ev.info["command"], ev.info["response"]
        sim = self.stack.sim
        cost = sim.cost_model
        last = float(getattr(sim, "last_cost_ms", 0.0))
        crypto = last - cost.transfer_ms(len(cmd), len(rsp)) - cost.apdu_overhead_ms
        self.crypto_ms += max(0.0, crypto)
        if (ev.info.get("source") != "host" and self.t_start is not None
                and self.t_done is None):
            self.toolkit_apdus += 1
            self.toolkit_card_ms += cost.apdu_ms(len(cmd), len(rsp))
        if ev.info.get("source") == "host":
            self.host.append((cmd, rsp))
            if cmd[1] == _INS_GET_DATA and cmd[2] == 0 and self.t_start is None:
                self.t_start = now
            elif (cmd[1] == _INS_GET_RESPONSE and len(rsp) == 6 and self.t_done is not None
                  and self.t_detect is None and int.from_bytes(rsp[:2], "big") == _STATUS_DATA):
                self.t_detect = now
        if (self.t_start is not None and self.t_done is None
                and sim.state.status == _STATUS_DATA):
            self.t_done = now + last / 1000


def _device_apdus(host: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """The 8 APDUs of the floor from a run's host APDUs: every one but the channel close and
    all status polls except the last (CC 02 + its GET RESPONSE)."""
    out: list[tuple[int, int]] = []
    last_poll: list[tuple[int, int]] = []
    i = 0
    while i < len(host):
        cmd, rsp = host[i]
        if cmd[1] == _INS_MANAGE_CHANNEL and cmd[2] == 0x80:
            i += 1
            continue
        if cmd[1] == _INS_STATUS:
            last_poll = [(len(cmd), len(rsp))]
            if i + 1 < len(host) and host[i + 1][0][1] == _INS_GET_RESPONSE:
                last_poll.append((len(host[i + 1][0]), len(host[i + 1][1])))
                i += 1
            i += 1
            continue
        if cmd[1] == _INS_GET_DATA and cmd[2] == 1 and last_poll:
            out += last_poll
        out.append((len(cmd), len(rsp)))
        i += 1
    return out


async def _measure(scenario: Scenario, runs: int, schedules: dict[str, dict[str, int] | None],
                   cold: bool = False) -> dict[str, list[_Run]]:
    from ztp.demo import Stack, StackOptions
    from ztp.gateway import GatewayConfig, RateLimit
    from ztp.modem import LatencyModel
    from ztp.sim import CostModel

    rec = _Recorder()
    # One SIM provisions runs x schedules times in a minute or two: the gateway's per-identity
    # limit (10/min, burst 5) would answer 429 and the applet's retry (2 s backoff) would be
    # measured instead of the exchange. The bench raises it; the storm benchmark covers limits.
    unlimited = RateLimit(per_second=1e6, burst=10**6)
    options = StackOptions(
        gateway_config=GatewayConfig(name="bench", identity_rate=unlimited),
        fast_hashing=True,
        latency=LatencyModel(uart_baud=scenario.uart_baud, network_rtt_ms=scenario.rtt_ms),
        sim_cost=CostModel().after_pps() if scenario.pps else CostModel(),
    )
    results: dict[str, list[_Run]] = {name: [] for name in schedules}
    async with Stack(options, listener=rec) as stack:
        rec.stack = stack
        with tempfile.TemporaryDirectory(prefix="ztp-bench-prov-") as tmp:
            for r in range(runs):
                for name, sched in schedules.items():
                    rec.reset()
                    attempts0 = stack.sim.state.counters.attempts
                    if cold:  # as a card reset leaves it (a board that power-cycles its modem)
                        stack.sim.dns_cache.clear()
                    with _firmware_schedule(sched):
                        out = await stack.provision(
                            config_dir=Path(tmp) / f"{len(results[name])}-{r}-{id(sched)}",
                            label=f"run {r + 1}: {name}")
                    retried = stack.sim.state.counters.attempts - attempts0 > 1
                    ok = not retried and out.code == 0 and None not in (rec.t_first, rec.t_applied,
                                                        rec.t_start, rec.t_done, rec.t_detect)
                    if not ok:
                        from ._common import BenchError

                        raise BenchError(f"{scenario.name}, {name}: provisioning ended "
                                         f"{out.name} ({out.detail})"
                                         + (", the applet retried" if retried else ""))
                    polls = sum(1 for c, _ in rec.host if c[1] == _INS_STATUS)
                    results[name].append(_Run(
                        total_s=rec.t_applied - rec.t_first,  # type: ignore[operator]
                        to_start_s=rec.t_start - rec.t_first,  # type: ignore[operator]
                        sim_done_s=rec.t_done - rec.t_start,  # type: ignore[operator]
                        detect_to_applied_s=rec.t_applied - rec.t_detect,  # type: ignore[operator]
                        lag_s=rec.t_detect - rec.t_done,  # type: ignore[operator]
                        polls=polls, device_apdus=_device_apdus(rec.host),
                        crypto_ms=rec.crypto_ms, bip_bytes=rec.bip_bytes, name=out.name,
                        dns=rec.dns, toolkit_apdus=rec.toolkit_apdus,
                        toolkit_card_ms=rec.toolkit_card_ms))
    return results


def floor_ms(scenario: Scenario, device_apdus: list[tuple[int, int]], crypto_ms: float,
             bip_bytes: int, n_rtt: int = N_RTT_WITH_DNS) -> dict[str, float]:
    """The floor's terms (ms) from the model's parameters (see the module docstring)."""
    from ztp.sim import CostModel

    cost = CostModel().after_pps() if scenario.pps else CostModel()
    apdus = sum(cost.apdu_ms(c, r) for c, r in device_apdus)
    uart = sum(_csim_uart_bytes(c, r) for c, r in device_apdus) * 10 * 1000 / scenario.uart_baud
    payload = bip_bytes * cost.etu_per_char * 1000 / cost.bits_per_second
    terms = {
        "network_ms": n_rtt * scenario.rtt_ms,
        "device_apdus_ms": apdus,
        "uart_ms": uart,
        "sim_crypto_ms": crypto_ms,
        "bip_payload_ms": payload,
    }
    terms["floor_ms"] = sum(terms.values())
    terms["issue_terms_ms"] = terms["floor_ms"] - payload  # the issue's list, no BIP bytes
    return terms


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _floor_of(sc: Scenario, rs: list[_Run]) -> dict[str, float]:
    """The floor for a row's runs: 4 RTT when its SIM resolved the name, 3 when cached."""
    dns = sum(r.dns for r in rs) * 2 >= len(rs)
    return floor_ms(sc, rs[0].device_apdus, _median([r.crypto_ms for r in rs]),
                    int(_median([r.bip_bytes for r in rs])),
                    N_RTT_WITH_DNS if dns else N_RTT_WITH_DNS - 1)


def _framing_ms(sc: Scenario, r: _Run) -> float:
    """Card time of the toolkit APDUs before SIM done, less the BIP payload they carry."""
    from ztp.sim import CostModel

    cost = CostModel().after_pps() if sc.pps else CostModel()
    return r.toolkit_card_ms - r.bip_bytes * cost.etu_per_char * 1000 / cost.bits_per_second


def run(runs: int = 3, reference: str = "run",
        scenarios: tuple[Scenario, ...] = SCENARIOS,
        extra: tuple[str, ...] = (), cold: bool = False) -> Table:
    """Time to provision per scenario and schedule, the model's floor, the 10 s reference.

    ``reference``: "run" (run the stack with a fixed 10 s schedule) or "compute" (from the
    default-schedule runs; see the module docstring). ``extra``: more schedules to compare,
    each ``FIRST,INTERVAL`` in ms (``parse_schedule``). ``cold``: the SIM's DNS cache is
    emptied before every run (otherwise runs after the first find the name cached).
    """
    schedules = dict(SCHEDULES)
    for text in extra:
        name, fields = parse_schedule(text)
        schedules[name] = fields
    if reference != "run":
        del schedules[FIXED_10S]
    table = Table(
        title=f"Time to provision, firmware start to config applied (median of {runs}; "
              f"{'DNS every run' if cold else 'DNS answer cached after the first run'})",
        columns=["scenario", "poll schedule", "time to provision", "start to CA 00",
                 "SIM done after CA 00", "poll lag", "polls", "toolkit APDUs", "BIP framing",
                 "floor (issue terms)", "floor (+ BIP payload)", "vs floor", "vs issue floor",
                 "vs 10 s polling"],
    )
    data: dict[str, Any] = {"runs": runs, "reference": reference, "cold": cold,
                            "scenarios": {}}
    for sc in scenarios:
        res = asyncio.run(_measure(sc, runs, schedules, cold))
        base = res[DEFAULT]
        fl = _floor_of(sc, base)
        if reference == "run":
            ref_s = _median([r.total_s for r in res[FIXED_10S]])
            ref_how = "run"
        else:
            ref_s = _median([r.to_start_s + 10.0 * max(1, math.ceil(r.sim_done_s / 10.0))
                             + r.detect_to_applied_s for r in base])
            ref_how = "computed"
        floors = {}
        for name, rs in res.items():
            total = _median([r.total_s for r in rs])
            f = floors[name] = _floor_of(sc, rs)
            floor_s, issue_s = f["floor_ms"] / 1000, f["issue_terms_ms"] / 1000
            table.rows.append([
                sc.name, name + (" [run]" if name == FIXED_10S else ""), f"{total:.2f} s",
                f"{_median([r.to_start_s for r in rs]):.2f} s",
                f"{_median([r.sim_done_s for r in rs]):.2f} s",
                f"{_median([r.lag_s for r in rs]):.2f} s",
                f"{_median([float(r.polls) for r in rs]):.0f}",
                f"{_median([float(r.toolkit_apdus) for r in rs]):.0f}",
                f"{_median([_framing_ms(sc, r) for r in rs]) / 1000:.2f} s",
                f"{issue_s:.2f} s", f"{floor_s:.2f} s",
                f"{total / floor_s:.2f}x", f"{total / issue_s:.2f}x", f"{total / ref_s:.2f}x",
            ])
        if reference != "run":
            floor_s, issue_s = fl["floor_ms"] / 1000, fl["issue_terms_ms"] / 1000
            table.rows.append([sc.name, FIXED_10S + " [computed]", f"{ref_s:.2f} s", "", "",
                               "", "", "", "", f"{issue_s:.2f} s", f"{floor_s:.2f} s",
                               f"{ref_s / floor_s:.2f}x", f"{ref_s / issue_s:.2f}x", "1.00x"])
        table.notes.append(
            f"{sc.name}: floor = network {fl['network_ms']:.0f} + device APDUs "
            f"{fl['device_apdus_ms']:.0f} + UART {fl['uart_ms']:.0f} + SIM crypto "
            f"{fl['sim_crypto_ms']:.0f} = {fl['issue_terms_ms']:.0f} ms (issue terms) + BIP "
            f"payload {fl['bip_payload_ms']:.0f} = {fl['floor_ms']:.0f} ms")
        data["scenarios"][sc.name] = {
            "floor": fl, "floors": floors, "reference_s": ref_s, "reference": ref_how,
            "runs": {name: [r.__dict__ for r in rs] for name, rs in res.items()},
        }
    table.notes += [
        "floor (issue terms) = 4 RTT (DNS, TCP, TLS, HTTP; 3 when the SIM had the name cached) "
        "+ the 8 device APDUs (card time + AT+CSIM on the UART) + SIM crypto; floor (+ BIP "
        "payload) adds the DNS/TLS/HTTP bytes across the SIM interface once (docs/bench.md); "
        "'vs floor' is against the latter",
        "not in either floor: modem start (start to CA 00), channel close, the toolkit's "
        "framing: 'BIP framing' = card time of the FETCH / TERMINAL RESPONSE / ENVELOPE APDUs "
        "from CA 00 to SIM done less the payload they carry",
        "SIM done = CA 00 to the card's status reading DATA; poll lag = from then to the "
        "status poll that saw it",
        "UART 115200 baud; registration done before the run; 'vs 10 s polling' = this row's "
        "time / the reference sketch's",
    ]
    table.data = data
    return table
