# _boot.py of the MKR GSM 1400 image: the samd port's (ports/samd/modules/_boot.py, v1.28.0)
# with one change: littlefs programs 64 bytes at a time (progsize=64, the SAMD21's flash page)
# instead of 256. Every open file carries a buffer of progsize bytes on the GC heap, and the
# firmware writes its state files while provisioning holds most of the ~22 KB heap: a file
# object of ~130 B instead of ~320 B in one piece is what lets every power-up path run in
# 15 KB (ztp bench firmware). progsize is not stored on the flash: a file system made with
# the port's 256 mounts unchanged. Keep firmware/host/ztp_powerup.py and ztp_fsinit.py (the
# heap run's copy of this file) in step: host_tests/firmware_heap checks it.
import gc
import vfs
import samd
import sys

bdev = samd.Flash()

# Try to mount the filesystem, and format the flash if it doesn't exist.
fs_type = vfs.VfsLfs2 if hasattr(vfs, "VfsLfs2") else vfs.VfsLfs1

try:
    fs = fs_type(bdev, progsize=64)
except:
    fs_type.mkfs(bdev, progsize=64)
    fs = fs_type(bdev, progsize=64)
vfs.mount(fs, "/")
sys.path.append("/lib")

del fs, fs_type, bdev, vfs, samd, sys
gc.collect()
del gc
