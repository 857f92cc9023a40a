"""Writing the MKR GSM 1400 image with bossac through Arduino's SAM-BA bootloader.

The MKR keeps the 8 KB SAM-BA bootloader at 0x0000-0x1FFF; the image (firmware.bin, linked
at 0x2000) goes right after it. BOSSA 1.9 (Debian's bossa-cli) writes at flash address 0 plus
`--offset`, so the offset must be 0x2000: without it, it overwrites the bootloader. BOSSA 1.7
and 1.8 (Arduino's bundled bossac 1.7.0-arduino3 among them) add the 8 KB themselves, so
with `--offset=0x2000` they would write at 0x4000 and the board would not boot the image
(shumatech/BOSSA#79): we refuse those versions.

`-e` erases from the offset to the end of the flash, the file system included: after
flashing an image the board starts with an empty file system (the port's _boot.py formats
it), so main.py is copied again and any stored configuration is gone.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

OFFSET = 0x2000  # after the SAM-BA bootloader (ArduinoCore-samd flash_with_bootloader.ld)
BOSSAC_HINT = "apt-get install bossa-cli (BOSSA 1.9 or later)"

DOUBLE_TAP = (
    "Put the MKR GSM 1400 in its bootloader first: double-tap the RESET button (the second\n"
    "press within half a second of the first). The built-in LED (PA20) then pulses and the\n"
    "board shows up as a new USB serial port (Arduino VID 2341, PID 0052; often the same\n"
    "/dev/ttyACM0) until it is reset. Only the double tap works: MicroPython's\n"
    "machine.bootloader() and the 1200-baud touch write the UF2 bootloaders' magic\n"
    "(0xf01669ef), not SAM-BA's (0x07738135), so on the MKR they just reset the board.\n"
    "bossac resets the board into the new image when it is done (-R)."
)


class FlashError(Exception):
    """bossac is missing, too old (wrong offset semantics) or the image file is not a .bin."""


def bossac_version(bossac: str = "bossac") -> tuple[int, int, int] | None:
    """The version bossac's --help names ("... Version 1.9.1"), or None if it names none."""
    r = subprocess.run([bossac, "--help"], capture_output=True, text=True)
    m = re.search(r"Version (\d+)\.(\d+)(?:\.(\d+))?", r.stdout + r.stderr)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def bossac_command(image: Path, port: str) -> list[str]:
    """The bossac command line that writes `image` (a firmware.bin) after the bootloader.

    Args:
        image: the raw image linked at 0x2000 (firmware.bin, not the .elf or .uf2).
        port: the bootloader's serial port (/dev/ttyACM0).

    Returns:
        `bossac --port=PORT -U -i -e -w --offset=0x2000 -R IMAGE`: -U the port is USB CDC,
        -i print the device, -e erase from the offset to the end, -w write, -R reset into it.

    Raises:
        FlashError: no bossac on PATH, a bossac older than 1.9 (offset added twice), or an
            image that is not a .bin.
    """
    if image.suffix != ".bin":
        raise FlashError(f"{image}: bossac writes the raw firmware.bin (not {image.suffix})")
    bossac = shutil.which("bossac")
    if bossac is None:
        raise FlashError(f"no bossac on PATH: {BOSSAC_HINT}")
    version = bossac_version(bossac)
    if version is not None and version < (1, 9, 0):
        raise FlashError(
            f"bossac {'.'.join(map(str, version))} adds the 8 KB bootloader offset itself, so "
            f"--offset=0x{OFFSET:x} would write the image at 0x4000: use {BOSSAC_HINT}")
    return ["bossac", f"--port={port}", "-U", "-i", "-e", "-w", f"--offset=0x{OFFSET:x}", "-R",
            str(image)]
