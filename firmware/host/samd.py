# samd: the host double of the samd port's `samd` module (ports/samd/modsamd.c,
# samd_flash.c): Flash(), the internal-flash block device that the port's frozen _boot.py
# mounts as littlefs v1 (progsize=64, the board's _boot.py). Blocks are VFS_BLOCK_SIZE_BYTES = 1536 (24 pages of
# 64 B, mcu/samd21/mpconfigmcu.h); the block count is the file system's size / 1536.
#
# Backed by a host file (ZTP_FLASH_IMAGE, ZTP_FLASH_BLOCKS blocks; opened by _setup() before
# the posix root is unmounted). Like the port's: Flash() is a singleton (a constant object on
# the board, made once here and credited with the double), writeblocks(n, buf) erases the
# block first, writeblocks(n, buf, off) programs without erasing, ioctl 6 erases (to 0xff).

import os

from micropython import const

_BLOCK = const(1536)
# MP_BLOCKDEV_IOCTL_*
_INIT = const(1)
_DEINIT = const(2)
_SYNC = const(3)
_COUNT = const(4)
_SIZE = const(5)
_ERASE = const(6)

_file = None
_blocks = 0
_ff = bytearray(b"\xff" * 64)


class Flash:
    def __new__(cls):
        return _flash[0]

    def readblocks(self, n, buf, off=0):
        _file.seek(n * _BLOCK + off)
        _file.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if off is None:
            _erase(n)
            off = 0
        _file.seek(n * _BLOCK + off)
        _file.write(buf)

    def ioctl(self, op, arg):
        if op == _INIT or op == _DEINIT or op == _SYNC:
            return 0
        if op == _COUNT:
            return _blocks
        if op == _SIZE:
            return _BLOCK
        if op == _ERASE:
            _erase(arg)
            return 0
        return None

    def flash_version(self):
        return 2


def _erase(n):
    _file.seek(n * _BLOCK)
    for _ in range(_BLOCK // 64):
        _file.write(_ff)


_flash = [object.__new__(Flash)]


def _setup(create=False):
    # opens ZTP_FLASH_IMAGE (made of erased blocks first when `create`)
    global _file, _blocks
    path = os.getenv("ZTP_FLASH_IMAGE")
    _blocks = int(os.getenv("ZTP_FLASH_BLOCKS") or "0")
    if not path or _blocks < 2:
        raise OSError(2)  # ENOENT: no backing file given
    if create:
        f = open(path, "wb")
        for _ in range(_blocks * (_BLOCK // 64)):
            f.write(_ff)
        f.close()
    _file = open(path, "r+b")
