"""``ztp bench firmware``: the firmware as the Arduino MKR GSM 1400 runs it (issue 19).

- flash and RAM: the board's image (``ztp.firmware._image.build_image``: the samd port with
  lib/ frozen, for firmware/boards/ARDUINO_MKR_GSM_1400), its budget read from the linked ELF:
  code region used / size, the frozen content's bytes, the littlefs file system, static RAM
  (.data + .bss) and the GC heap (``_sstack - _ebss``). Without the image module, or when it
  cannot build (no ARM toolchain), the stock SAMD21 figures with a note.
- heap: the board-faithful heap run (``ztp.firmware._heap``): the same frozen lib/ in a 32-bit
  MicroPython unix build configured as the samd21 build, running the repository's boot.py and
  main.py from a littlefs as at power-up, the modem UART on the virtual SARA modem; per path
  (first boot, second boot, rollback at boot, a retried attempt) the smallest heap in 1 KB
  steps at which it reaches "configuration confirmed", against the goal of 16 KB; the live
  heap after the imports, at the first byte to the modem and the largest seen (a probe run at
  the board's heap); the host doubles' own heap, which every run is given on top (credit).
- secondary, named for what they are: the .mpy files mpy-cross makes of lib/ (-O3 as frozen,
  and -O0 with line numbers; issue 9 set its 24 KB code goal on these, the image's frozen
  bytes are larger), and one provisioning under the MicroPython WASI runtime with the garbage
  collector off (an upper bound of what one provisioning allocates, not a heap the board needs).
- UART: bytes the firmware writes to and reads from the modem during one provisioning against
  the scripted SARA modem + SAFE2 SIM of the firmware tests (host_tests/firmware/fw_fakes.py),
  run under CPython: the bytes on the wire do not depend on the interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import BenchError, Table

WASI_ISSUE9_GOAL = 12 * 1024  # issue 9's heap goal, set on the WASI figure
MPY_ISSUE9_GOAL = 24 * 1024  # issue 9's code goal, set on the .mpy files


def code_sizes(opt: int) -> dict[str, int]:
    from ztp.device import FirmwareCheckError, build_mpy

    with tempfile.TemporaryDirectory() as tmp:
        try:
            files = build_mpy(Path(tmp), "armv6m", opt)
        except FirmwareCheckError as exc:
            raise BenchError(str(exc)) from None
        return {p.stem: p.stat().st_size for p in files}


def frozen_sizes() -> tuple[dict[str, int], int]:
    """.mpy sizes of the modules firmware/manifest.py freezes (every lib/*.py), compiled with
    its opt level."""
    from ztp.device import FIRMWARE, LIB

    text = (FIRMWARE / "firmware" / "manifest.py").read_text()
    opt = re.search(r"\bopt=(\d)", text)
    if not opt:
        raise BenchError("firmware/manifest.py: no opt= found")
    names = re.search(r"for _m in \(([^)]*)\)", text)
    modules = (re.findall(r'"(\w+)"', names.group(1)) if names
               else sorted(p.stem for p in LIB.glob("*.py")))
    level = int(opt.group(1))
    out: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for m in modules:
            dst = Path(tmp) / f"{m}.mpy"
            cmd = [sys.executable, "-m", "mpy_cross", f"-O{level}", "-march=armv6m",
                   "-o", str(dst), str(LIB / f"{m}.py")]
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=LIB)
            if r.returncode != 0:
                raise BenchError(f"mpy-cross {m}.py: {r.stderr.strip() or r.stdout.strip()}")
            out[m] = dst.stat().st_size
    return out, level


def wasi_heap() -> Any:
    from ztp.device import FirmwareCheckError, measure_heap

    try:
        return measure_heap()
    except FirmwareCheckError as exc:
        raise BenchError(str(exc)) from None
    except ImportError as exc:
        msg = f"MicroPython WASI runtime missing ({exc}): pip install -e '.[test]'"
        raise BenchError(msg) from None


def uart_bytes(done_after_ms: int = 2000) -> dict[str, int]:
    """One provisioning on the fake modem; bytes each way, AT commands, APDUs, polls."""
    from ztp.device import TESTS, load_firmware

    fw = load_firmware()
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import fw_fakes

    clock, sim, m, fs = fw_fakes.make_rig(done_after_ms=done_after_ms)
    counts = {"to_modem": 0, "from_modem": 0}
    write, readinto = m.write, m.readinto

    def counted_write(b: Any) -> int:
        counts["to_modem"] += len(b)
        return int(write(b))

    def counted_readinto(buf: Any, n: int = -1) -> int:
        got = int(readinto(buf, n))
        counts["from_modem"] += got
        return got

    m.write, m.readinto = counted_write, counted_readinto
    apply, modem, provision = fw["apply"], fw["modem"], fw["provision"]
    applier = apply.Applier(fs, "/ztp", None)
    applier.register("iot:Alarm", apply.PinHandler(fw_fakes.FakePin()))
    link = modem.Link(m, clock)
    p = provision.Provisioner(
        link,
        fs,
        applier,
        bytes(range(16)),
        "/ztp/channel",
        provision.Options(),
        fw_fakes.rng,
        None,
    )
    code = p.run()
    if code not in (0, 1):
        name = getattr(provision, "result_name", None)
        raise BenchError("provisioning on the fake modem ended "
                         + (name(code) if name else provision.RESULT_NAMES[code]))
    return {
        **counts,
        "at_commands": len(m.sent),
        "apdus": len(sim.log),
        "polls": int(p.polls),
        "virtual_ms": int(clock.now - 1000),
    }


def _b(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B"


def _pct(n: int | None, of: int) -> str:
    return "" if n is None or not of else f"{n / of:.0%}"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def board_rows(table: Table, budget: Any) -> None:
    """Flash and RAM rows from the board's budget (`ztp.firmware._heap.BoardBudget`)."""
    b = budget.image
    if b is not None:
        table.rows.append(["flash: code region", "image: load image / MICROPY_HW_CODESIZE",
                           _b(b.code_used), _b(b.code_size), _pct(b.code_used, b.code_size)])
        table.rows.append(["flash: frozen lib/", "image: frozen_content.o kept by the linker",
                           _b(b.frozen), "", ""])
        table.rows.append(["flash: file system", "image: littlefs on the internal flash",
                           _b(b.fs), "", f"{b.fs // 1536} blocks of 1536 B"])
        table.rows.append(["RAM: static", "image: .data + .bss", _b(b.static_ram), "", ""])
        table.rows.append(["RAM: GC heap", "image: _sstack - _ebss", _b(b.gc_heap), "", ""])
    else:
        table.rows.append(["RAM: GC heap", "stock SAMD21 build (no image: see notes)",
                           _b(budget.gc_heap), "", ""])
        table.notes.append("flash and RAM: " + budget.note)


def heap_rows(table: Table, rep: Any) -> dict[str, object]:
    """Heap rows from a `ztp.firmware._heap.HeapReport`; returns its raw numbers."""
    goal = rep.goal
    board = rep.board.gc_heap
    for name, p in rep.paths.items():
        note = "" if p.verified else f" ({p.note})"
        table.rows.append([f"heap: {name}", p.spec.title + note, _b(p.min_heap), _b(goal),
                           _pct(p.min_heap, goal)])
    overall = rep.overall_min
    table.rows.append(["heap: every path", "smallest heap (1 KB steps) at which all complete",
                       _b(overall), _b(goal), _pct(overall, goal)])
    at_board = {n: (p.at_board.ok if p.at_board else None) for n, p in rep.paths.items()}
    failed = [n for n, ok in at_board.items() if not ok]
    table.rows.append(["heap: at the board's heap", f"every path at {board:,} B",
                       "all pass" if not failed else "FAIL: " + ", ".join(failed), "", ""])
    credit = rep.credit

    def live(key: str) -> int | None:
        vals = [r.probe[key] - credit for r in rep.probes.values() if key in r.probe]
        return max(vals) if vals else None

    table.rows.append(["heap in use: at power-up", "live at boot.py (after _boot.py)",
                       _b(live("boot")), "", ""])
    table.rows.append(["heap in use: after imports", "live at the first machine call "
                       "(board.Board, after ztpmain's imports and settings)",
                       _b(live("first_call")), _b(goal), _pct(live("first_call"), goal)])
    table.rows.append(["heap in use: provisioning starts", "live at the first byte to the modem",
                       _b(live("first_modem_byte")), _b(goal),
                       _pct(live("first_modem_byte"), goal)])
    table.rows.append(["heap in use: largest seen", "live at any machine call, every path "
                       "(a lower bound of the peak)", _b(live("max")), _b(goal),
                       _pct(live("max"), goal)])
    table.rows.append(["host doubles (credited)", "their modules, Pin table, files and the "
                       "holes plugged, measured in each run and given on top", _b(credit),
                       "", ""])
    firsts = sorted({r.first_byte.split(": ", 2)[-1] for r in rep.probes.values()
                     if r.first_byte})
    table.notes.append("heap run: 32-bit MicroPython v1.28.0 unix build, the samd21 "
                       "configuration and the board's trims (firmware/host), lib/ frozen at "
                       f"-O3, -X heapsize = heap + {credit:,} B credit; a path passes when "
                       "\"ztp: configuration confirmed\" follows its result with no "
                       "MemoryError; heaps in use are probe runs (collected at each machine "
                       "call), doubles subtracted")
    if firsts:
        table.notes.append("before the first modem byte: " + "; ".join(firsts))
    return {
        "board_heap": board,
        "goal": goal,
        "credit": credit,
        "overall_min": overall,
        "paths": {n: {"min_heap": p.min_heap, "verified": p.verified, "note": p.note,
                      "at_board_ok": at_board[n],
                      "runs": [[r.heap, r.ok, r.reason, r.elapsed_s] for r in p.runs]}
                  for n, p in rep.paths.items()},
        "probes": {n: {"probe": r.probe, "ok": r.ok, "first_byte": r.first_byte}
                   for n, r in rep.probes.items()},
        "live": {k: live(k) for k in ("boot", "first_call", "first_modem_byte", "max")},
    }


def run(skip_heap: bool = False) -> Table:
    from ztp.firmware import board_budget

    table = Table(
        title="Firmware on the Arduino MKR GSM 1400 (SAMD21G18A: 256 KB flash, 32 KB RAM)",
        columns=["metric", "how", "measured", "goal", "of goal"],
    )
    data: dict[str, object] = {}
    budget = board_budget(say=lambda m: None)
    board_rows(table, budget)
    data["board"] = {"gc_heap": budget.gc_heap, "fs_bytes": budget.fs_bytes,
                     "from_image": budget.from_image, "note": budget.note,
                     "image": vars(budget.image) if budget.image is not None else None}
    if not skip_heap:
        from ztp.firmware import HeapBuildError, measure

        try:
            rep = measure(say=_say)
        except HeapBuildError as exc:
            raise BenchError(f"heap run: {exc}") from None
        data["heap"] = heap_rows(table, rep)

    frozen, level = frozen_sizes()
    frozen_total = sum(frozen.values())
    sizes = code_sizes(0)
    code_total = sum(sizes.values())
    table.rows.append([".mpy files, -O3 (secondary)", f"{len(frozen)} lib/ modules, mpy-cross "
                       f"-O{level} -march=armv6m, as separate files (not the image)",
                       f"{frozen_total:,} B", "", ""])
    table.rows.append([".mpy files, -O0 (secondary)", f"{len(sizes)} .mpy with line numbers "
                       "(ztp build --opt 0, debugging)", f"{code_total:,} B", "", ""])
    data.update({"code_bytes": sizes, "frozen_code_bytes": frozen, "frozen_opt": level})
    if not skip_heap:
        h = wasi_heap()
        table.rows.append(["WASI allocations, gc off (secondary)", "one provisioning under the "
                           "MicroPython WASI runtime, nothing freed: an upper bound of what it "
                           "allocates, not the heap the board needs",
                           f"{h.firmware_alloc_bytes:,} B", "", ""])
        data["wasi"] = {"firmware_alloc_bytes": h.firmware_alloc_bytes,
                        "fake_alloc_bytes": h.fake_alloc_bytes,
                        "live_after_bytes": h.live_after_bytes}
    uart = uart_bytes()
    total = uart["to_modem"] + uart["from_modem"]
    table.rows.append(
        [
            "UART",
            f"{uart['at_commands']} AT commands, {uart['apdus']} APDUs, {uart['polls']} polls",
            f"{total:,} B",
            "",
            f"out {uart['to_modem']:,} / in {uart['from_modem']:,}",
        ]
    )
    data["uart"] = uart
    largest = sorted(frozen.items(), key=lambda kv: -kv[1])
    table.notes.append(".mpy by module (-O3): " + ", ".join(f"{k} {v:,}" for k, v in largest))
    table.notes.append(
        f"issue 9's goals were set on the secondary lines (code {MPY_ISSUE9_GOAL // 1024} KB of "
        f".mpy, heap {WASI_ISSUE9_GOAL // 1024} KB under WASI); the board's figures are the "
        "image's and the heap run's")
    table.notes.append(
        f"UART: scripted SARA + SAFE2 SIM of the firmware tests, SIM ready 2 s after CA 00, "
        f"default poll schedule ({uart['virtual_ms']:,} ms virtual time)"
    )
    table.data = data
    return table
