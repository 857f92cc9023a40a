"""The Arduino MKR GSM 1400 firmware image: MicroPython v1.28.0's samd port built for the board
definition in firmware/boards/ARDUINO_MKR_GSM_1400 with lib/ frozen (firmware/manifest.py).

Theory of operation. `build_image()` takes the source tree from `micropython_tree()`, builds
mpy-cross in it once, then runs `make -C ports/samd BOARD_DIR=<board> BUILD=<dir>` with the
build directory under the cache (`cache_root()`), never in the repository or the tree. The
outputs (firmware.elf, firmware.bin, firmware.uf2 and the link map) and the budget go to
`cache_root()/image-<key>`, the key hashing everything that decides the bytes: the tree's
identity, the board directory, lib/, firmware/manifest.py, the code size, the compiler's
version and this module's recipe number. A second call with the same inputs returns at once.
A link that overflows the code region is deterministic, so it is cached too (and raised again).

Flash (boards/samd21x18a.ld): 256 KB = 8 KB SAM-BA bootloader (the image starts at 0x2000)
+ code region (MICROPY_HW_CODESIZE) + ROMFS + the littlefs file system (`_sflash_fs`, the rest).
RAM: 32 KB = .data + .bss + GC heap (`_sstack - _ebss`) + 8 KB stack + 8 bytes for the
bootloader's double-tap flag.

Which file goes where: firmware.bin is what the MKR's SAM-BA bootloader takes (`ztp flash
--image`, bossac --offset=0x2000); firmware.uf2 (family SAMD21, base 0x2000) is only for boards
whose bootloader speaks UF2 (Adafruit/Seeed SAMD21 boards), not for the MKR's.

Abbreviations: FS = the internal-flash file system; ROMFS = MicroPython's read-only VfsRom
partition (0 bytes on this board).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from ztp.firmware._source import (
    FIRMWARE,
    cache_root,
    inputs_key,
    jobs,
    locked,
    micropython_tree,
    mpy_cross,
    tree_identity,
)

BOARD = "ARDUINO_MKR_GSM_1400"
BOARD_DIR = FIRMWARE / "firmware" / "boards" / BOARD
LIB_DIR = FIRMWARE / "lib"
MANIFEST = FIRMWARE / "firmware" / "manifest.py"

FLASH_BYTES = 256 * 1024  # SAMD21G18A
BOOTLOADER_BYTES = 8 * 1024  # Arduino's SAM-BA bootloader; the image starts here
TEXT0 = 0x2000
RAM_START = 0x20000000
RAM_END = 0x20008000  # 32 KB
FS_MIN_BYTES = 32 * 1024  # the smallest file system we accept (config, state, main.py)

# bump when the build recipe changes in a way the other inputs do not show
_RECIPE = "1"
_CROSS = "arm-none-eabi-"
_TOOLCHAIN_HINT = "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
_CODESIZE_RE = re.compile(r"^([1-9][0-9]{1,2})K$")
_OVERFLOW_RE = re.compile(r"^.*region [`']?FLASH'? overflowed by \d+ bytes.*$", re.M)


class ImageError(Exception):
    """The image cannot be built: the toolchain is missing, the code size leaves the file
    system under 32 KB, the link overflows the code region, or make failed otherwise. The
    message says which, quoting the linker's line for an overflow."""


@dataclass(frozen=True)
class Budget:
    """Where the flash and RAM go, in bytes, read from the linked ELF (symbols of the linker
    script, samd21x18a.ld/sections.ld) and its map.

    code_used: the code region's load image (.isr_vector + .text + .rodata + .ARM + the .data
        initialisers), what the linker's "FLASH Used Size" says; code_size: the region
        (MICROPY_HW_CODESIZE, `_codesize`).
    frozen: bytes the frozen content takes inside code_used: every input section of
        frozen_content.o (bytecode, constant objects, the frozen qstr pool, module table of
        lib/*.py and the port's _boot.py) that the linker kept, summed from the link map.
    romfs: the ROMFS partition after the code region (`_micropy_hw_romfs_part0_size`).
    fs: the littlefs file system on the internal flash (`_sflash_fs`).
    static_ram: .data + .bss with the alignment between them (`_ebss - _sdata`), what the
        linker's "RAM Used Size" says.
    gc_heap: the MicroPython heap, everything between .bss and the stack (`_sstack - _ebss`).
    """

    code_used: int
    code_size: int
    frozen: int
    romfs: int
    fs: int
    static_ram: int
    gc_heap: int


@dataclass(frozen=True)
class Image:
    """A built image: paths (in the cache, or in `out` when given) and its budget."""

    elf: Path
    bin: Path
    uf2: Path
    map: Path
    budget: Budget
    codesize: str
    cached: bool  # True when the cache already held it


def _parse_codesize(codesize: str) -> int:
    m = _CODESIZE_RE.match(codesize)
    if not m:
        raise ImageError(f"code size {codesize!r}: expected kilobytes like 208K")
    return int(m.group(1)) * 1024


def board_codesize() -> str:
    """The board's default MICROPY_HW_CODESIZE (its mpconfigboard.mk)."""
    text = (BOARD_DIR / "mpconfigboard.mk").read_text()
    m = re.search(r"^MICROPY_HW_CODESIZE\s*\??=\s*(\S+)", text, re.M)
    if not m:
        raise ImageError(f"{BOARD_DIR / 'mpconfigboard.mk'}: no MICROPY_HW_CODESIZE")
    return m.group(1)


def fs_bytes(codesize: str, romfs_bytes: int = 0) -> int:
    """The file system a code size leaves (the linker script's `_sflash_fs`)."""
    return FLASH_BYTES - BOOTLOADER_BYTES - _parse_codesize(codesize) - romfs_bytes


def _toolchain() -> str:
    """The cross compiler's version line; raises ImageError when gcc or newlib is missing."""
    gcc = shutil.which(_CROSS + "gcc")
    if gcc is None or shutil.which(_CROSS + "nm") is None or shutil.which("make") is None:
        raise ImageError(f"no ARM toolchain ({_CROSS}gcc, {_CROSS}nm, make): {_TOOLCHAIN_HINT}")
    libc = subprocess.run([gcc, "-print-file-name=libc.a"], capture_output=True, text=True)
    if not Path(libc.stdout.strip()).is_absolute():
        raise ImageError(f"no newlib for {_CROSS}gcc (libc.a not found): {_TOOLCHAIN_HINT}")
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True)
    return version.stdout.splitlines()[0] if version.stdout else gcc


def _symbols(elf: Path) -> dict[str, int]:
    r = subprocess.run([_CROSS + "nm", str(elf)], capture_output=True, text=True, check=True)
    out = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out[parts[2]] = int(parts[0], 16)
    return out


def _frozen_bytes(map_file: Path) -> int:
    """Sum of the input sections of frozen_content.o that the linker placed in the flash
    output sections (.text, .ARM, .data), read from the link map's memory map. The
    "Discarded input sections" list before it and the .debug_* sections after are not
    counted. An input section is one line (` .rodata.x  0xADDR  0xSIZE  path`) or, for a long
    name, two (the name, then `0xADDR 0xSIZE path`); an output section starts at column 0."""
    text = map_file.read_text(errors="replace")
    start = text.find("Linker script and memory map")
    if start < 0:
        raise ImageError(f"{map_file}: not a GNU ld map (no memory map)")
    total = 0
    section = ""
    out_re = re.compile(r"^(\.\S+)")
    in_re = re.compile(r"^\s+(?:\S+\s+)?0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*frozen_content\.o$")
    for line in text[start:].splitlines():
        m = out_re.match(line)
        if m:
            section = m.group(1)
            continue
        m = in_re.match(line)
        if m and section in (".text", ".ARM", ".data"):
            total += int(m.group(1), 16)
    return total


def _budget(elf: Path, map_file: Path) -> Budget:
    s = _symbols(elf)
    data = s["_edata"] - s["_sdata"]
    return Budget(
        code_used=s["_sidata"] + data - TEXT0,
        code_size=s["_codesize"],
        frozen=_frozen_bytes(map_file),
        romfs=s["_micropy_hw_romfs_part0_size"],
        fs=s["_sflash_fs"],
        static_ram=s["_ebss"] - s["_sdata"],
        gc_heap=s["_sstack"] - s["_ebss"],
    )


_OUTPUTS = ("firmware.elf", "firmware.bin", "firmware.uf2", "firmware.elf.map")


def _image(where: Path, budget: Budget, codesize: str, cached: bool) -> Image:
    return Image(elf=where / "firmware.elf", bin=where / "firmware.bin",
                 uf2=where / "firmware.uf2", map=where / "firmware.elf.map", budget=budget,
                 codesize=codesize, cached=cached)


def _load(done: Path) -> Budget:
    failed = done / "overflow.txt"
    if failed.exists():
        raise ImageError(failed.read_text().strip())
    return Budget(**json.loads((done / "budget.json").read_text()))


def _make(tree: Path, build: Path, codesize: str) -> subprocess.CompletedProcess[str]:
    cmd = ["make", "-C", str(tree / "ports" / "samd"), f"-j{jobs()}",
           f"BOARD={BOARD}", f"BOARD_DIR={BOARD_DIR}", f"BUILD={build}",
           f"MICROPY_HW_CODESIZE={codesize}", f"PYTHON={sys.executable}",
           f"MICROPY_MPYCROSS={mpy_cross(tree)}"]
    return subprocess.run(cmd, capture_output=True, text=True)


def build_image(src: Path | None = None, out: Path | None = None,
                codesize: str | None = None) -> Image:
    """Build (or take from the cache) the MKR GSM 1400 image with lib/ frozen.

    Args:
        src: a MicroPython v1.28.0 source tree; None = `micropython_tree()`'s choice
            ($ZTP_MICROPYTHON_SRC, the vendored tarball, else a git clone).
        out: a directory to copy firmware.elf/.bin/.uf2 (and the link map) into; the Image's
            paths then point there. None = leave them in the cache.
        codesize: MICROPY_HW_CODESIZE, e.g. "208K"; None = the board's default.

    Returns:
        The Image: its paths, the code size built for, its Budget (`image.budget.gc_heap`...)
        and whether it came from the cache.

    Raises:
        ImageError: the toolchain is missing ("apt-get install gcc-arm-none-eabi
            libnewlib-arm-none-eabi"); the code size leaves a file system under 32 KB (no
            build is tried); the link overflows the code region (the message quotes the
            linker's "region `FLASH' overflowed by N bytes"); any other build failure (the
            make output's tail).
        SourceError: no MicroPython tree could be found or made.
    """
    codesize = codesize or board_codesize()
    fs = fs_bytes(codesize)
    if fs < FS_MIN_BYTES:
        raise ImageError(f"file system would be {fs} bytes, under 32 KB "
                         f"(code region {codesize} of 248 KB after the bootloader)")
    compiler = _toolchain()
    tree = micropython_tree(src)
    key = inputs_key(tree_identity(tree), BOARD_DIR, LIB_DIR, MANIFEST,
                     f"codesize={codesize}", f"cc={compiler}", f"recipe={_RECIPE}")
    done = cache_root() / f"image-{key}"
    cached = done.exists()
    if not cached:
        with locked(f"image-{key}"):
            cached = done.exists()  # another process may have built it while we waited
            if not cached:
                _build(tree, done, codesize)
    budget = _load(done)
    where = done
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        for name in _OUTPUTS:
            shutil.copy2(done / name, out / name)
        where = out
    return _image(where, budget, codesize, cached)


def _build(tree: Path, done: Path, codesize: str) -> None:
    work = Path(tempfile.mkdtemp(prefix=done.name + "-", dir=cache_root()))
    try:
        build = work / "build"
        r = _make(tree, build, codesize)
        log = r.stdout + r.stderr
        result = work / "result"
        result.mkdir()
        if r.returncode != 0:
            overflow = _OVERFLOW_RE.search(log)
            if not overflow:
                tail = "\n".join(log.strip().splitlines()[-20:])
                raise ImageError(f"make (samd port, {BOARD}, {codesize}) failed:\n{tail}")
            # deterministic for these inputs: remembered, so asking again costs nothing
            (result / "overflow.txt").write_text(
                f"the image does not link at code size {codesize}: "
                f"{overflow.group(0).strip()}\n")
        else:
            for name in _OUTPUTS:
                shutil.copy2(build / name, result / name)
            budget = _budget(result / "firmware.elf", result / "firmware.elf.map")
            (result / "budget.json").write_text(json.dumps(asdict(budget), indent=1) + "\n")
        result.rename(done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
