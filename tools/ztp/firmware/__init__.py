"""The firmware as the board runs it: the MKR GSM 1400 image (samd port, frozen lib/) and the
board-faithful heap run (the same frozen modules in a 32-bit MicroPython unix build).

    build_image()  firmware.elf/.bin/.uf2 and the Budget read from the link (_image)
    bossac_command()  how the MKR's SAM-BA bootloader is flashed (_flash)
    measure()      the smallest heap per power-up path (_heap; builds the unix variant)
    firmware_root()  where boot.py, main.py, lib/ and firmware/ are: the checkout or the
                   copy packaged in the wheel (_tree)
"""

from ztp.firmware._flash import DOUBLE_TAP, FlashError, bossac_command
from ztp.firmware._heap import HEAP_GOAL, HeapReport, board_budget, measure
from ztp.firmware._heap_build import HeapBuildError
from ztp.firmware._image import BOARD, BOARD_DIR, Budget, Image, ImageError, build_image
from ztp.firmware._source import SourceError, cache_root, micropython_tree
from ztp.firmware._tree import checkout_root, firmware_root

__all__ = [
    "BOARD",
    "BOARD_DIR",
    "DOUBLE_TAP",
    "HEAP_GOAL",
    "Budget",
    "FlashError",
    "HeapBuildError",
    "HeapReport",
    "Image",
    "ImageError",
    "SourceError",
    "board_budget",
    "bossac_command",
    "build_image",
    "cache_root",
    "checkout_root",
    "firmware_root",
    "measure",
    "micropython_tree",
]
