"""Every path from power-up to a confirmed configuration, run as the board runs it (the heap run:
32-bit MicroPython with the board's configuration, frozen lib/, the repository's boot.py and
main.py from a littlefs, the modem on the virtual SARA of ztp.demo.Stack), at the board's GC
heap (the image's `_sstack - _ebss`) and at the goal of issue 19, 16 KB.

The runs (every path at both heaps) go two at a time in one module fixture (about 40 s); the
tests read them.
`test_path_at_goal_heap` fails until the firmware fits in 16 KB: that is the goal others work
toward, asserted as it is, not expected to fail.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import pytest
from ztp.demo import DEMO_CONFIG
from ztp.firmware._heap import (
    _CONFIG_PREV,
    _CONFIG_TRIAL,
    HEAP_GOAL,
    PATHS,
    HeapRig,
)
from ztp.firmware._heap_build import HostBuild
from ztp.firmware._heap_run import RunResult

BOARD = "board"
GOAL = "goal"


@pytest.fixture(scope="module")
def rig(host_build: HostBuild) -> Iterator[HeapRig]:
    with HeapRig(build=host_build, stacks=2) as r:
        yield r


@pytest.fixture(scope="module")
def runs(rig: HeapRig, tmp_path_factory: pytest.TempPathFactory
         ) -> dict[tuple[str, str], RunResult | Path]:
    assert rig.budget is not None
    keep = tmp_path_factory.mktemp("heap") / "rollback.img"
    heaps = {BOARD: rig.budget.gc_heap, GOAL: HEAP_GOAL}
    out: dict[tuple[str, str], RunResult | Path] = {("rollback", "image"): keep}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        futs = {(name, which): ex.submit(rig.run, name, heap,
                                         keep=keep if (name, which) == ("rollback", BOARD)
                                         else None)
                for which, heap in heaps.items() for name in PATHS}
        for k, f in futs.items():
            out[k] = f.result()
    return out


def _why(r: RunResult) -> str:
    return (f"{r.reason} at heap {r.heap:,} B (-X heapsize={r.heapsize:,} with the doubles' "
            f"credit); last lines:\n  " + "\n  ".join(r.tail[-12:]))


def _run(runs: dict[tuple[str, str], RunResult | Path], name: str, which: str) -> RunResult:
    r = runs[(name, which)]
    assert isinstance(r, RunResult)
    return r


@pytest.mark.parametrize("name", list(PATHS))
def test_path_at_board_heap(runs: dict[tuple[str, str], RunResult | Path], name: str) -> None:
    r = _run(runs, name, BOARD)
    assert r.ok, _why(r)
    assert "ztp: configuration confirmed" in r.log


@pytest.mark.parametrize("name", list(PATHS))
def test_path_at_goal_heap(runs: dict[tuple[str, str], RunResult | Path], name: str) -> None:
    # issue 19's goal: the firmware completes every path in a 16 KB heap
    r = _run(runs, name, GOAL)
    assert r.ok, _why(r)


def test_pmic_and_flow_control_before_first_modem_byte(
        runs: dict[tuple[str, str], RunResult | Path]) -> None:
    # the MKR's order (Arduino's initVariant, then MKRGSM's begin): the PMIC's input current
    # limit is set over I2C, and RTS is asserted (UART RTS/CTS, or GSM_RTS driven low), before
    # anything is written to the modem
    r = _run(runs, "first_boot", BOARD)
    assert r.first_byte, _why(r)
    assert "pmic_written=1" in r.first_byte, r.first_byte
    assert "flow=none" not in r.first_byte, r.first_byte


def test_the_modem_sees_rts_and_its_reset_line(
        runs: dict[tuple[str, str], RunResult | Path]) -> None:
    # the virtual modem starts with RTS off (&K3: its output held) and follows the pins the
    # double forwards: a firmware that never asserted RTS would get no answer to AT (checked
    # by hand: "modem silent: no answer to AT after 20 tries"), and GSM_RESETN's pulses reset it
    r = _run(runs, "first_boot", BOARD)
    assert "rts=1" in r.wires, r.wires
    assert r.wires.index("rts=1") < r.wires.index("resetn=0"), r.wires   # before it boots
    assert r.reset_pulses >= 1, r.wires
    assert r.ok, _why(r)


def test_credit_measured_and_added(rig: HeapRig,
                                   runs: dict[tuple[str, str], RunResult | Path]) -> None:
    # the doubles' own heap (their modules, classes, the Pin table, file objects) is measured
    # in the same binary and given back in whole 16-byte GC blocks; every run measured the same
    assert rig.credit > 0 and rig.credit % 16 == 0
    for k, r in runs.items():
        if isinstance(r, RunResult):
            assert r.credit == rig.credit, k
            assert r.heapsize == r.heap + rig.credit, k


def test_rollback_left_the_previous_configuration(
        rig: HeapRig, runs: dict[tuple[str, str], RunResult | Path]) -> None:
    assert _run(runs, "rollback", BOARD).ok
    image = runs[("rollback", "image")]
    assert isinstance(image, Path)
    files = rig.files(image)
    assert files["/ztp/config.bad"] == _CONFIG_TRIAL.encode()  # the unconfirmed one
    assert files["/ztp/config.prev"] == _CONFIG_PREV.encode()  # restored, then replaced
    assert files["/ztp/config.json"] == DEMO_CONFIG.encode()   # provisioned and confirmed
    assert "/ztp/trial" not in files


def test_bench_reports_the_credit_and_every_path(
        rig: HeapRig, runs: dict[tuple[str, str], RunResult | Path]) -> None:
    # `ztp bench firmware`'s heap rows, fed with these runs (the bench's own search is slower)
    from ztp.bench._common import Table
    from ztp.bench._firmware import heap_rows
    from ztp.firmware._heap import HeapReport, PathReport

    assert rig.budget is not None and rig.build is not None
    paths = {n: PathReport(PATHS[n], min_heap=rig.budget.gc_heap,
                           at_board=_run(runs, n, BOARD), runs=[_run(runs, n, BOARD)],
                           verified=True) for n in PATHS}
    rep = HeapReport(board=rig.budget, credit=rig.credit, build=rig.build, paths=paths,
                     probes={n: _run(runs, n, BOARD) for n in PATHS})
    table = Table(title="t", columns=["metric", "how", "measured", "goal", "of goal"])
    data = heap_rows(table, rep)
    rows = {r[0]: r for r in table.rows}
    assert rows["host doubles (credited)"][2] == f"{rig.credit:,} B"
    assert data["credit"] == rig.credit
    assert [f"heap: {n}" for n in PATHS] == [r[0] for r in table.rows][:len(PATHS)]
    assert rows["heap: at the board's heap"][2] == "all pass"
    assert rows["heap: every path"][3] == f"{HEAP_GOAL:,} B"
