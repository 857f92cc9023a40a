"""Smoke tests of ``ztp bench provision`` and ``ztp bench storm`` with tiny sizes: the rows
exist and the runs succeeded; no timing is asserted (STYLE.md §5)."""

from __future__ import annotations

import pytest
from ztp.bench import BenchError

from .. import peers


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except BenchError as exc:
        peers.missing(f"benchmark cannot run here: {exc}")


def test_provision_rows() -> None:
    from ztp.bench._provision import DEFAULT, FIXED_10S, PREVIOUS, SCENARIOS, run

    table = _run(run, runs=1, reference="compute", scenarios=SCENARIOS[:1])
    assert [row[:2] for row in table.rows] == [
        [SCENARIOS[0].name, DEFAULT],
        [SCENARIOS[0].name, PREVIOUS],
        [SCENARIOS[0].name, FIXED_10S + " [computed]"],
    ]
    assert all(row[11].endswith("x") for row in table.rows)
    floor = table.data["scenarios"][SCENARIOS[0].name]["floor"]  # type: ignore[index]
    assert floor["network_ms"] == 4 * SCENARIOS[0].rtt_ms
    runs = table.data["scenarios"][SCENARIOS[0].name]["runs"][DEFAULT]  # type: ignore[index]
    assert len(runs[0]["device_apdus"]) == 8  # open, select, set ID, CA 00, poll, CA 01 + C0


def test_floor_terms() -> None:
    from ztp.bench._provision import Scenario, floor_ms

    slow, fast = Scenario("slow", False, 100), Scenario("fast", True, 100)
    apdus = [(5, 3), (17, 2), (21, 2), (5, 2), (5, 2), (5, 6), (5, 2), (5, 92)]
    a, b = floor_ms(slow, apdus, 400.0, 700), floor_ms(fast, apdus, 400.0, 700)
    assert a["network_ms"] == b["network_ms"] == 400
    assert a["device_apdus_ms"] > b["device_apdus_ms"]
    assert a["bip_payload_ms"] == pytest.approx(700 * 12 / 9.6)  # 12 etu a byte at 9600
    assert a["floor_ms"] == pytest.approx(a["issue_terms_ms"] + a["bip_payload_ms"])


def test_storm_rows() -> None:
    from ztp.bench._storm import run

    table = _run(run, sims=3, server_cpu=None, driver_cpu=None, deadline_s=60)
    assert len(table.rows) == 1
    assert table.rows[0][0] == "3"
    assert table.rows[0][2] == "0"  # no failed SIM
    assert table.data["completed"] == 3
    assert table.data["handshakes"] >= 3
