# ztp_fsinit: the heap run's setup, `micropython -X heapsize=1M -m ztp_fsinit` (a large heap:
# this is not the board): the board's file system as a host image file, written by the same
# littlefs code the board and the heap run use.
#
#   ZTP_FS_MODE=format (default): erase the image (ZTP_FLASH_IMAGE, ZTP_FLASH_BLOCKS blocks of
#     1536 B), VfsLfs1.mkfs(progsize=64) as _boot.py does on a new board, then copy the host
#     directory ZTP_FS_SEED into it (boot.py, main.py, ztp/...; as `mpremote cp` would)
#   ZTP_FS_MODE=dump: print every file of the image as "file <path> <size> <hex>" lines
import os
import sys
import vfs

import samd

_mode = os.getenv("ZTP_FS_MODE") or "format"
samd._setup(create=(_mode == "format"))
_bdev = samd.Flash()
if _mode == "format":
    vfs.VfsLfs1.mkfs(_bdev, progsize=64)
vfs.mount(vfs.VfsLfs1(_bdev, progsize=64), "/flash")


def _copy(src, dst):
    for ent in os.ilistdir(src):
        name, kind = ent[0], ent[1]
        s = src + "/" + name
        d = dst + "/" + name
        if kind == 0x4000:
            os.mkdir(d)
            _copy(s, d)
        else:
            with open(s, "rb") as fi, open(d, "wb") as fo:
                while True:
                    b = fi.read(512)
                    if not b:
                        break
                    fo.write(b)
            print("wrote", d[6:], os.stat(d)[6])


def _dump(path):
    for ent in os.ilistdir(path):
        name, kind = ent[0], ent[1]
        p = path + "/" + name
        if kind == 0x4000:
            print("dir", p[6:])
            _dump(p)
        else:
            with open(p, "rb") as f:
                data = f.read()
            print("file", p[6:], len(data), data.hex())


if _mode == "format":
    seed = os.getenv("ZTP_FS_SEED")
    if seed:
        _copy(seed, "/flash")
else:
    _dump("/flash")
st = os.statvfs("/flash")
print("fs blocks", st[2], "free", st[3], "block size", st[0])
vfs.umount("/flash")
sys.exit(0)
