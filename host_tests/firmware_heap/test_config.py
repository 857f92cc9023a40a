"""The heap run is configured as the board: every MICROPY_* setting of the MKR GSM 1400's image
build (samd port, the board's mpconfigboard.h and mpconfigtrim.h) and of the heap run's unix
build (firmware/host), evaluated by each build's own preprocessor, differs only where
`_heap_config.EXPECTED` says why (the unix port, the host doubles, the harness, hardware)."""

from __future__ import annotations

import shutil

from ztp.firmware._heap_build import HostBuild
from ztp.firmware._heap_config import config_diff, expected
from ztp.firmware._image import board_codesize
from ztp.firmware._source import micropython_tree

from ..peers import missing

# what decides how much heap the firmware takes: never allowed to differ
HEAP_SETTINGS = (
    "MICROPY_CONFIG_ROM_LEVEL", "MICROPY_ENABLE_GC", "MICROPY_ENABLE_FINALISER",
    "MICROPY_GC_ALLOC_THRESHOLD", "MICROPY_GC_STACK_ENTRY_TYPE", "MICROPY_BYTES_PER_GC_BLOCK",
    "MICROPY_ERROR_REPORTING", "MICROPY_FLOAT_IMPL", "MICROPY_LONGINT_IMPL",
    "MICROPY_OBJ_REPR", "MICROPY_ENABLE_SOURCE_LINE", "MICROPY_ENABLE_COMPILER",
    "MICROPY_COMP_CONST_TUPLE", "MICROPY_ALLOC_QSTR_CHUNK_INIT", "MICROPY_ALLOC_PARSE_RULE_INIT",
    "MICROPY_ALLOC_PARSE_CHUNK_INIT", "MICROPY_QSTR_BYTES_IN_HASH", "MICROPY_VFS_LFS1",
    "MICROPY_VFS_LFS2", "MICROPY_VFS_FAT", "MICROPY_MODULE_FROZEN_MPY", "MICROPY_PY_JSON",
    "MICROPY_PY_BUILTINS_MEMORYVIEW", "MICROPY_PY_ARRAY", "MICROPY_ROM_TEXT_COMPRESSION",
    "MICROPY_CPYTHON_COMPAT", "MICROPY_PY_FSTRINGS", "MICROPY_MODULE___FILE__",
)


def test_heap_run_is_configured_as_the_board(host_build: HostBuild) -> None:
    if not shutil.which("arm-none-eabi-gcc"):
        missing("arm-none-eabi-gcc not installed (the board's configuration is read with it)")
    diff = config_diff(micropython_tree(), host_build, board_codesize())
    unexplained = [d for d in diff if not expected(d[0])]
    assert not unexplained, "settings that differ from the board's: " + ", ".join(
        f"{n} (board {a}, heap run {b})" for n, a, b in unexplained)
    differ = {n for n, _, _ in diff}
    assert not differ & set(HEAP_SETTINGS)


def test_heap_run_mounts_the_file_system_as_the_boards_boot_py() -> None:
    # the board's frozen _boot.py and the heap run's copy of it (power-up and the setup run
    # that formats the image) agree on the littlefs geometry: every open file costs progsize
    # bytes of heap, so a copy that drifted would measure another heap
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    board = (root / "firmware/boards/ARDUINO_MKR_GSM_1400/modules/_boot.py").read_text()
    want = set(re.findall(r"progsize=(\d+)", board))
    assert want == {"64"}
    for copy in ("firmware/host/ztp_powerup.py", "firmware/host/ztp_fsinit.py"):
        got = set(re.findall(r"progsize=(\d+)", (root / copy).read_text()))
        assert got == want, copy
    assert "vfs.mount(fs, \"/\")" in board and "samd.Flash()" in board
