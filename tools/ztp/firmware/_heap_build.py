"""The heap run's interpreter and file systems: MicroPython v1.28.0's unix port built 32-bit with
the board's configuration (firmware/host: the variant, its doubles and lib/ frozen), and the
board's littlefs written into host image files by that same binary.

Theory of operation. `build_host()` generates the board's tables (`_heap_board`) into a
directory of their own, then runs `make -C ports/unix VARIANT_DIR=firmware/host BUILD=...`
(MICROPY_FORCE_32BIT=1 and the module set come from the variant's mpconfigvariant.mk) in a
build directory under the cache root that is kept between builds of the same tree and
variant (a change to lib/ rebuilds only the frozen content), and copies the binary to
`cache_root()/heap-unix-<key>/micropython`, the key hashing every input: the tree, the
variant directory, lib/, the board definition, the generator and this recipe. A second call
with the same inputs returns at once. Builds of one key wait for each other (a lock file);
mpy-cross is built in the tree under the same lock name as the image build uses.

`make_fs()` runs the binary's `ztp_fsinit` (a large heap: this is the setup, not the board) to
erase an image file of `blocks` x 1536 B, format it as the board's _boot.py would (VfsLfs1,
progsize=64) and copy a host directory into it; `dump_fs()` reads every file back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ztp.firmware._heap_board import BoardTables, read_tables, write_generated
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

HOST_DIR = FIRMWARE / "firmware" / "host"
LIB_DIR = FIRMWARE / "lib"
BOARD_DIR = FIRMWARE / "firmware" / "boards" / "ARDUINO_MKR_GSM_1400"
VFS_BLOCK = 1536  # VFS_BLOCK_SIZE_BYTES, ports/samd/mcu/samd21/mpconfigmcu.h
SETUP_HEAP = "1M"

_RECIPE = "1"
_TOOLCHAIN_HINT = "apt-get install gcc-multilib make"


class HeapBuildError(Exception):
    """The heap run's binary cannot be built (no 32-bit C toolchain, make failed: the message
    has the tail of its output) or a setup run failed."""


@dataclass(frozen=True)
class HostBuild:
    """The built interpreter: `micropython` (a path in the cache), its key, whether the cache
    held it, and the board tables its doubles were generated from."""

    micropython: Path
    key: str
    cached: bool
    tables: BoardTables


def toolchain() -> str:
    """The host compiler's version line, after checking that it links a 32-bit program.

    Raises:
        HeapBuildError: gcc or make is missing, or gcc cannot build -m32 (gcc-multilib).
    """
    gcc = shutil.which("gcc")
    if gcc is None or shutil.which("make") is None:
        raise HeapBuildError(f"no C toolchain (gcc, make): {_TOOLCHAIN_HINT}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "t.c"
        src.write_text("#include <stdio.h>\nint main(void){return sizeof(void*)==4?0:1;}\n")
        r = subprocess.run([gcc, "-m32", "-o", str(Path(tmp) / "t"), str(src)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise HeapBuildError(f"gcc cannot build 32-bit programs (gcc-multilib missing?): "
                                 f"{(r.stderr or r.stdout).strip()[:300]}; {_TOOLCHAIN_HINT}")
    v = subprocess.run([gcc, "--version"], capture_output=True, text=True)
    return v.stdout.splitlines()[0] if v.stdout else gcc


def build_host(src: Path | None = None, lib_dir: Path | None = None) -> HostBuild:
    """Build (or take from the cache) the heap run's 32-bit unix MicroPython.

    Args:
        src: a MicroPython v1.28.0 tree; None = `micropython_tree()`'s choice.
        lib_dir: the firmware modules to freeze; None = the repository's lib/.

    Returns:
        The HostBuild (binary path in the cache).

    Raises:
        HeapBuildError: no 32-bit toolchain, or make failed (its output's tail).
        SourceError: no MicroPython tree.
    """
    compiler = toolchain()
    tree = micropython_tree(src)
    here = Path(__file__).resolve().parent
    board = BOARD_DIR if BOARD_DIR.is_dir() else None
    lib = Path(lib_dir).resolve() if lib_dir is not None else LIB_DIR
    host_files = sorted(f for f in HOST_DIR.iterdir() if f.suffix in (".py", ".h", ".mk"))
    inputs: list[Path | str] = [tree_identity(tree), *host_files, lib,
                                here / "_heap_board.py", here / "_heap_build.py",
                                f"cc={compiler}", f"recipe={_RECIPE}"]
    if board is not None:
        inputs.append(board)
    key = inputs_key(*inputs)
    done = cache_root() / f"heap-unix-{key}"
    exe = done / "micropython"
    if exe.exists():
        return HostBuild(exe, key, True, read_tables(tree, board))
    # the kept build directory is per tree, compiler and make variables (make rebuilds what a
    # changed header or source touches, not what changed flags would)
    build_key = inputs_key(tree_identity(tree), HOST_DIR / "mpconfigvariant.mk",
                           f"cc={compiler}", f"recipe={_RECIPE}")
    with locked(f"heap-unix-build-{build_key}"):
        if exe.exists():
            return HostBuild(exe, key, True, read_tables(tree, board))
        work = Path(tempfile.mkdtemp(prefix=done.name + "-", dir=cache_root()))
        try:
            tables = write_generated(tree, board, work / "gen")
            build = cache_root() / f"heap-unix-build-{build_key}"
            # the generated files live in a fixed place inside the kept build directory, so
            # that make sees them change rather than move
            fixed = build / "ztp-gen"
            fixed.mkdir(parents=True, exist_ok=True)
            for f in (work / "gen").iterdir():
                target = fixed / f.name
                if not target.exists() or target.read_bytes() != f.read_bytes():
                    shutil.copy2(f, target)
            cmd = ["make", "-C", str(tree / "ports" / "unix"), f"-j{jobs()}",
                   f"VARIANT_DIR={HOST_DIR}", f"BUILD={build}",
                   f"MICROPY_MANIFEST_ZTP_GEN={fixed}", f"CFLAGS_EXTRA=-I{fixed}",
                   f"MICROPY_MPYCROSS={mpy_cross(tree)}", f"PYTHON={sys.executable}",
                   "MICROPY_FORCE_32BIT=1"]
            r = subprocess.run(cmd, capture_output=True, text=True,
                               env={**os.environ, "ZTP_LIB_DIR": str(lib)})
            if r.returncode != 0 or not (build / "micropython").exists():
                tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-25:])
                raise HeapBuildError(f"make (unix port, firmware/host variant) failed:\n{tail}")
            result = work / "result"
            result.mkdir()
            shutil.copy2(build / "micropython", result / "micropython")
            shutil.copytree(work / "gen", result / "gen")
            if done.exists():
                shutil.rmtree(done)
            result.rename(done)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return HostBuild(exe, key, False, tables)


def _setup_run(build: HostBuild, env: dict[str, str]) -> str:
    r = subprocess.run([str(build.micropython), "-X", f"heapsize={SETUP_HEAP}", "-m",
                        "ztp_fsinit"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, **env})
    if r.returncode != 0:
        raise HeapBuildError(f"ztp_fsinit ({env.get('ZTP_FS_MODE', 'format')}) failed: "
                             f"{(r.stdout + r.stderr).strip()[-800:]}")
    return r.stdout


def make_fs(build: HostBuild, image: Path, blocks: int, seed: Path) -> str:
    """Write `image`: `blocks` erased flash blocks, formatted as the board's _boot.py formats
    them, with the tree under `seed` copied in. Returns the setup run's listing."""
    return _setup_run(build, {"ZTP_FS_MODE": "format", "ZTP_FLASH_IMAGE": str(image),
                              "ZTP_FLASH_BLOCKS": str(blocks), "ZTP_FS_SEED": str(seed)})


def dump_fs(build: HostBuild, image: Path, blocks: int) -> dict[str, bytes]:
    """Every file of a board file system image, {"/ztp/config.json": b"...", ...}."""
    out = _setup_run(build, {"ZTP_FS_MODE": "dump", "ZTP_FLASH_IMAGE": str(image),
                             "ZTP_FLASH_BLOCKS": str(blocks)})
    files = {}
    for line in out.splitlines():
        parts = line.split(" ")
        if parts[0] == "file" and len(parts) == 4:
            files[parts[1]] = bytes.fromhex(parts[3])
    return files
