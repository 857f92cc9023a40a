"""How far the heap run's configuration is the board's: every MICROPY_* setting of the board's
image build (ports/samd with firmware/boards/ARDUINO_MKR_GSM_1400, as `_image` builds it) and
of the heap run's unix build (firmware/host), each evaluated by its own compiler's
preprocessor (arm-none-eabi-gcc, gcc -m32) with its own port's flags, and compared.

`config_diff()` returns the settings whose values differ; `EXPECTED` says why each expected
difference is there (the unix port, the host doubles, the harness, or hardware). A difference
not listed is a gap in firmware/host/mpconfigvariant.h (or in the generated board trims).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from pathlib import Path

from ztp.firmware._heap_build import HOST_DIR, HeapBuildError, HostBuild
from ztp.firmware._image import BOARD_DIR

# prefixes that are hardware or the machine module (the double takes its place)
EXPECTED_PREFIXES = {
    "MICROPY_HW_": "board hardware (USB, clocks, flash, pins): no such thing on the host",
    "MICROPY_PY_MACHINE": "machine is the frozen double (firmware/host/machine.py)",
    "MICROPY_BOARD_": "board hooks of the samd port",
    "MICROPY_PY_BLUETOOTH": "unix port defaults, no bluetooth module in either build",
    "MICROPY_PY_SOCKET": "unix port's socket settings, the module is off (mpconfigvariant.mk)",
    "MICROPY_SSL_": "unix port's TLS settings, off",
}
EXPECTED = {
    # the unix port, fixed by ports/unix/mpconfigport.h after the variant
    "MICROPY_VFS_POSIX": "unix: the host file system (setup only; power-up unmounts it)",
    "MICROPY_READER_POSIX": "unix: reader for posix files (the VFS reader is used for main.py)",
    "MICROPY_HELPER_LEXER_UNIX": "unix: lexer from a posix file",
    "MICROPY_ALLOC_PATH_MAX": "unix: PATH_MAX (stack buffers, not the heap)",
    "MICROPY_PY_SYS_EXECUTABLE": "unix: sys.executable (a constant)",
    "MICROPY_PYEXEC_COMPILE_ONLY": "unix: -X compile-only",
    "MICROPY_PYEXEC_ENABLE_EXIT_CODE_HANDLING": "unix: sys.exit() codes",
    "MICROPY_MODULE_OVERRIDE_MAIN_IMPORT": "unix: -m runs a module as __main__ (ztp_powerup)",
    "MICROPY_PY_SYS_PATH_ARGV_DEFAULTS": "unix: main.c makes sys.path (\"\", .frozen, as mp_init)",
    "MICROPY_PY_SYS_PATH_DEFAULT": "unix: the sys.path entries after \"\": .frozen",
    "MICROPY_EPOCH_IS_1970": "unix: time epoch (no heap)",
    "MICROPY_TIMESTAMP_IMPL": "unix: time_t timestamps",
    "MICROPY_SELECT_REMAINING_TIME": "unix: select() semantics",
    "MICROPY_STACKLESS": "unix sets it explicitly (0, as the samd default)",
    "MICROPY_STACKLESS_STRICT": "unix sets it explicitly (0, as the samd default)",
    "MICROPY_PY_THREAD_RECURSIVE_MUTEX": "unix: threads are off",
    "MICROPY_DEBUG_PRINTER": "unix: debug output to stderr",
    "MICROPY_ERROR_PRINTER": "unix: errors to stderr",
    "MICROPY_PLAT_DEV_MEM": "unix: /dev/mem for machine.mem (machine is off)",
    "MICROPY_UNIX_MACHINE_IDLE": "unix: machine.idle (machine is off)",
    "MICROPY_MACHINE_MEM_GET_READ_ADDR": "unix: machine.mem (machine is off)",
    "MICROPY_MACHINE_MEM_GET_WRITE_ADDR": "unix: machine.mem (machine is off)",
    "MICROPY_FATFS_ENABLE_LFN": "unix FAT settings, FAT is off",
    "MICROPY_FATFS_RPATH": "unix FAT settings, FAT is off",
    "MICROPY_FATFS_MAX_SS": "unix FAT settings, FAT is off",
    "MICROPY_FATFS_LFN_CODE_PAGE": "unix FAT settings, FAT is off",
    "MICROPY_GCREGS_SETJMP": "how the C stack's registers are scanned",
    "MICROPY_MAKE_POINTER_CALLABLE": "Thumb code pointers",
    "MICROPY_EMIT_THUMB": "native emitters: off in both at this size",
    "MICROPY_EMIT_INLINE_THUMB": "native emitters: off in both at this size",
    "MICROPY_EMIT_X86": "native emitters: off (the host's)",
    "MICROPY_EMIT_X64": "native emitters: off (the host's)",
    "MICROPY_EMIT_ARM": "native emitters: off",
    "MICROPY_EMIT_THUMB_ARMV7M": "native emitters: off (Thumb-2 code for the host's default)",
    "MICROPY_EPOCH_IS_2000": "time epoch of the samd port (no heap)",
    "MICROPY_PLATFORM_VERSION": "platform.platform() text; platform is off on the board",
    "MICROPY_PY_BUILTINS_HELP_TEXT": "help() is off on the board (trim)",
    "MICROPY_USE_GCC_MUL_OVERFLOW_INTRINSIC": "how the C code checks overflow (CPU)",
    "MICROPY_BOARD_BUILD_NAME": "the build's name (a constant)",
    "MICROPY_PY_SOCKET_LISTEN_BACKLOG_DEFAULT": "socket is off in both",
    "MICROPY_EMIT_RV32": "native emitters: off",
    "MICROPY_PERSISTENT_CODE_LOAD_NATIVE": "native .mpy: not loaded in either",
    "MICROPY_NLR_X86": "nlr implementation of the CPU",
    "MICROPY_NLR_THUMB": "nlr implementation of the CPU",
    "MICROPY_NLR_THUMB_USE_LONG_JUMP": "nlr implementation of the CPU",
    "MICROPY_NLR_SETJMP": "nlr implementation of the CPU",
    "MICROPY_NLR_OS_WINDOWS": "nlr implementation of the CPU",
    "MICROPY_PY_TIME_INCLUDEFILE": "time: the unix module (same functions lib/ uses)",
    "MICROPY_PY_TIME_CUSTOM_SLEEP": "time: the unix module's sleep",
    "MICROPY_PY_TIME_GMTIME_LOCALTIME_MKTIME": "time: the unix module has its own gmtime",
    "MICROPY_PY_TIME_TIME_TIME_NS": "time: the unix module",
    "MICROPY_PY_OS_INCLUDEFILE": "os: the unix module",
    "MICROPY_PY_OS_GETENV_PUTENV_UNSETENV": "os.getenv: the doubles read their wiring",
    "MICROPY_PY_BUILTINS_EXECFILE": "power-up runs boot.py/main.py with execfile (as pyexec)",
    "MICROPY_DEBUG_PRINTERS": "unix main.c reads mp_verbose_flag (-v only)",
    "MICROPY_EVENT_POLL_HOOK": "the port's idle hook (WFE / sched_yield)",
    "MICROPY_PY_RANDOM_SEED_INIT_FUNC": "random is off on the board (trim)",
    "MICROPY_USE_INTERNAL_ERRNO": "errno numbering of the port (not the heap)",
    "MICROPY_VFS_ROM": "ROMFS: compiled on the board but 0 bytes (no partition, nothing mounted)",
    "MICROPY_VFS_ROM_IOCTL": "ROMFS: see MICROPY_VFS_ROM",
    "MICROPY_HAS_FILE_READER": "derived from the readers above",
    "MICROPY_PY_VFS": "derived from MICROPY_VFS (on in both)",
    "MICROPY_KBD_EXCEPTION": "same value, spelled by each port",
    "MICROPY_PY_SYS_PLATFORM": "\"samd\" in both (set here)",
    "MICROPY_PY_OS_DUPTERM_NOTIFY": "dupterm is off on the board (trim)",
    "MICROPY_SCHEDULER_DEPTH": "scheduler queue (static, not the heap)",
    "MICROPY_SOFT_TIMER_TICKS_MS": "soft timers of the samd port (machine.Timer)",
    "MICROPY_PY_OS_URANDOM": "os.urandom: both have it",
    "MICROPY_STACK_CHECK_MARGIN": "C stack margin (the stack, not the heap)",
    "MICROPY_PY_SYS_STDIO_BUFFER": "same (0)",
    "MICROPY_STREAMS_POSIX_API": "unix streams API helpers",
    "MICROPY_ENABLE_VM_ABORT": "same",
    "MICROPY_PYEXEC_ENABLE_VM_ABORT": "same",
    "MICROPY_MODULE_FROZEN_STR": "frozen .py as strings (the unix build can; nothing is frozen so)",
}

_PRINT_MK = "print-ztp-cflags:\n\t$(info $(CFLAGS))\n"


def _make_cflags(port_dir: Path, args: list[str]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        mk = Path(tmp) / "print.mk"
        mk.write_text(_PRINT_MK)
        r = subprocess.run(["make", "-s", "-C", str(port_dir), *args, "-f", "Makefile",
                            "-f", str(mk), "print-ztp-cflags"], capture_output=True, text=True)
    if r.returncode != 0:
        raise HeapBuildError(f"make print-ztp-cflags in {port_dir}: {r.stderr.strip()[-500:]}")
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    return shlex.split(lines[-1]) if lines else []


def _macros(cc: list[str], cflags: list[str], cwd: Path) -> dict[str, str]:
    """Every MICROPY_* macro py/mpconfig.h ends up with, expanded by the preprocessor."""
    keep: list[str] = []
    it = iter(cflags)
    for f in it:
        if f in ("-I", "-D", "-U", "-include"):
            keep += [f, next(it, "")]
        elif f.startswith(("-I", "-D", "-U", "-m", "-std")):
            keep.append(f)
    names = subprocess.run([*cc, *keep, "-E", "-dM", "-x", "c", "-"], input=
                           '#include "py/mpconfig.h"\n', capture_output=True, text=True,
                           cwd=cwd)
    if names.returncode != 0:
        raise HeapBuildError(f"{cc[0]} -dM: {names.stderr.strip()[-500:]}")
    found = sorted(set(re.findall(r"^#define (MICROPY_\w+)\b(?!\()", names.stdout, re.M)))
    src = '#include "py/mpconfig.h"\n' + "".join(f'ZTPV "{n}" = {n} ;\n' for n in found)
    expanded = subprocess.run([*cc, *keep, "-E", "-P", "-x", "c", "-"], input=src,
                              capture_output=True, text=True, cwd=cwd)
    if expanded.returncode != 0:
        raise HeapBuildError(f"{cc[0]} -E: {expanded.stderr.strip()[-500:]}")
    out = {}
    for m in re.finditer(r'^ZTPV "(\w+)" = (.*?) ;$', expanded.stdout, re.M):
        out[m.group(1)] = _value(m.group(2))
    return out


def _value(expr: str) -> str:
    # an integer when the expansion is a constant expression, else the text
    py = re.sub(r"(\d+)[uUlL]+\b", r"\1", expr)
    py = py.replace("&&", " and ").replace("||", " or ")
    py = re.sub(r"!(?!=)", " not ", py)
    try:
        return str(int(eval(py, {"__builtins__": {}}, {})))  # noqa: S307 (digits only)
    except Exception:
        return " ".join(expr.split())


def samd_macros(tree: Path, codesize: str) -> dict[str, str]:
    board = BOARD_DIR
    args = [f"BOARD={board.name}", f"BOARD_DIR={board}", f"MICROPY_HW_CODESIZE={codesize}",
            "BUILD=/nonexistent-ztp-print"]
    flags = _make_cflags(tree / "ports" / "samd", args)
    return _macros(["arm-none-eabi-gcc"], flags, tree / "ports" / "samd")


def host_macros(tree: Path, build: HostBuild) -> dict[str, str]:
    gen = build.micropython.parent / "gen"
    args = [f"VARIANT_DIR={HOST_DIR}", "BUILD=/nonexistent-ztp-print",
            f"CFLAGS_EXTRA=-I{gen}", "MICROPY_FORCE_32BIT=1"]
    flags = _make_cflags(tree / "ports" / "unix", args)
    return _macros(["gcc", "-m32"], flags, tree / "ports" / "unix")


def expected(name: str) -> str | None:
    """Why `name` may differ, or None."""
    if name in EXPECTED:
        return EXPECTED[name]
    for prefix, why in EXPECTED_PREFIXES.items():
        if name.startswith(prefix):
            return why
    return None


def config_diff(tree: Path, build: HostBuild, codesize: str) -> list[tuple[str, str, str]]:
    """[(macro, the board's value, the heap run's value)] for every MICROPY_* that differs
    ("-" where a build does not define it)."""
    a = samd_macros(tree, codesize)
    b = host_macros(tree, build)
    return [(n, a.get(n, "-"), b.get(n, "-")) for n in sorted(set(a) | set(b))
            if a.get(n, "-") != b.get(n, "-")]
