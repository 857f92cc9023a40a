"""The MKR GSM 1400 image as built (ztp.firmware._image): it links with room for a file
system, its .bin is what SAM-BA boots at 0x2000, lib/ is frozen in it, and the budget adds up
to the flash and RAM of a SAMD21G18A."""

from __future__ import annotations

import re
import struct
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from ztp.device import cli as device_cli
from ztp.firmware._image import (
    BOOTLOADER_BYTES,
    FLASH_BYTES,
    FS_MIN_BYTES,
    LIB_DIR,
    RAM_END,
    RAM_START,
    TEXT0,
    Image,
    ImageError,
    build_image,
)

pytestmark = pytest.mark.image

_STACK_BYTES = 8 * 1024  # samd21x18a.ld: _sstack = _estack - 8K
_DOUBLE_TAP_BYTES = 8  # samd21x18a.ld: _estack = end of RAM - 8
_UF2_MAGIC_START0 = 0x0A324655  # UF2 spec: first magic of every 512-byte block
_UF2_FAMILY_SAMD21 = 0x68ED2B88


def test_image_links_with_a_file_system_of_32_kb_or_more(image: Image) -> None:
    b = image.budget
    assert 0 < b.code_used <= b.code_size
    assert b.fs >= FS_MIN_BYTES
    assert b.romfs == 0
    # the flash adds up: bootloader + code region + ROMFS + file system
    assert BOOTLOADER_BYTES + b.code_size + b.romfs + b.fs == FLASH_BYTES
    # and the RAM: .data/.bss + GC heap + stack + the double-tap word
    assert b.static_ram + b.gc_heap + _STACK_BYTES + _DOUBLE_TAP_BYTES == RAM_END - RAM_START
    assert b.gc_heap > 20 * 1024
    assert 20 * 1024 < b.frozen < b.code_used


def test_bin_and_uf2_are_written(image: Image) -> None:
    data = image.bin.read_bytes()
    # objcopy -j .isr_vector -j .text -j .data: the load image, gaps filled
    assert len(data) == image.budget.code_used
    uf2 = image.uf2.read_bytes()
    assert len(uf2) % 512 == 0 and len(uf2) // 512 == -(-len(data) // 256)
    magic0, _, flags, addr, size, _, _, family = struct.unpack_from("<8I", uf2, 0)
    assert magic0 == _UF2_MAGIC_START0
    assert addr == TEXT0 and size == 256
    assert flags & 0x2000 and family == _UF2_FAMILY_SAMD21  # family id present: SAMD21


def test_bin_starts_with_a_vector_table_sam_ba_accepts(image: Image) -> None:
    sp, reset = struct.unpack_from("<II", image.bin.read_bytes(), 0)
    assert RAM_START < sp <= RAM_END  # initial stack pointer inside the 32 KB of RAM
    assert sp % 4 == 0
    assert reset & 1  # Thumb
    assert TEXT0 <= reset & ~1 < TEXT0 + image.budget.code_used


def test_every_lib_module_is_frozen(image: Image) -> None:
    nm = subprocess.run(["arm-none-eabi-nm", str(image.elf)], capture_output=True, text=True,
                        check=True).stdout
    frozen = set(re.findall(r" frozen_module_(\w+)$", nm, re.M))
    modules = {p.stem for p in LIB_DIR.glob("*.py")}
    assert modules and modules <= frozen, modules - frozen
    assert "_boot" in frozen  # the port's _boot.py: mounts the file system
    data = image.bin.read_bytes()
    for m in modules:
        assert f"{m}.py".encode() + b"\0" in data  # mp_frozen_names: what import finds


def test_board_strings_and_modem_flow_control_are_in_the_image(image: Image) -> None:
    data = image.bin.read_bytes()
    assert b"Arduino MKR GSM 1400" in data
    assert b"SAMD21G18A" in data
    # MICROPY_HW_UART_RTSCTS is compiled in: UART's repr names rts/cts only then
    # (machine_uart.c; the qstrs themselves are merged into the tails of longer strings)
    assert b", rts=%q, cts=%q" in data


def test_too_small_code_region_fails_with_the_linkers_overflow_line(
        overflow: ImageError) -> None:
    msg = str(overflow)
    assert "184K" in msg
    assert re.search(r"region .FLASH. overflowed by \d+ bytes", msg), msg


def test_code_region_leaving_under_32_kb_of_file_system_is_refused() -> None:
    with pytest.raises(ImageError, match=r"file system would be 28672 bytes, under 32 KB"):
        build_image(codesize="220K")


def test_second_build_is_a_cache_hit(image: Image, tmp_path: Path) -> None:
    again = build_image(out=tmp_path)
    assert again.cached and again.budget == image.budget  # no make run: read from the cache
    assert again.bin == tmp_path / "firmware.bin"
    assert again.bin.read_bytes() == image.bin.read_bytes()


def test_ztp_build_image_prints_the_budget_table(image: Image, tmp_path: Path) -> None:
    out = tmp_path / "img"
    r = CliRunner().invoke(device_cli.build_cmd, ["--image", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in ("firmware.elf", "firmware.bin", "firmware.uf2"):
        assert (out / name).is_file()
    b = image.budget
    text = r.output
    assert re.search(rf"^  code +{b.code_used:,} / {b.code_size:,} B", text, re.M), text
    assert f"{100 * b.code_used / b.code_size:.1f}%" in text
    for label, n in (("frozen", b.frozen), ("ROMFS", b.romfs), ("file system", b.fs),
                     ("static RAM", b.static_ram), ("GC heap", b.gc_heap)):
        assert re.search(rf"^  {label} +{n:,} B", text, re.M), (label, text)
    assert "only for boards with a UF2 bootloader" in text


def test_ztp_build_image_reports_the_overflow(overflow: ImageError, tmp_path: Path) -> None:
    r = CliRunner().invoke(device_cli.build_cmd,
                           ["--image", "--codesize", "184K", "--out", str(tmp_path)])
    assert r.exit_code == 1
    assert "overflowed by" in r.output


def test_missing_toolchain_says_what_to_install(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no arm-none-eabi-gcc, no make
    with pytest.raises(ImageError,
                       match="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"):
        build_image()
