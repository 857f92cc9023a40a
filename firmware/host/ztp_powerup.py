# ztp_powerup: the board's power-up in the heap run, `micropython -X heapsize=N -m ztp_powerup`:
# what ports/samd/main.c does before its REPL, on the host doubles.
#
#   1. the doubles' wiring (machine._setup, samd._setup: the modem's pty, the flash image
#      file), measured: gc.mem_alloc() after minus before (both collected) is heap the board
#      does not spend (its Pin table, WDT and Flash are constant objects, its machine module
#      is not on the heap)
#   2. what the unix port made that the board does not have, dropped: the posix root mount
#      (paths are the board's from here), sys.argv
#   3. the holes left below the free heap plugged (see there), their size credited as well;
#      the sum is printed as "machine-double: credit=<bytes>" and the harness gives the run
#      the board's heap plus that credit (whole 16-byte GC blocks)
#   4. the board's frozen _boot.py (firmware/boards/ARDUINO_MKR_GSM_1400/modules), line for line: samd.Flash(),
#      VfsLfs1 (progsize=64; formatted if it does not mount), mounted at "/", "/lib" on
#      sys.path, its names deleted, gc.collect()
#   5. boot.py, then main.py, from the file system, as pyexec_file_if_exists does: compiled
#      from the file into these globals (the board's __main__; __file__ not set, see there), a missing file
#      skipped, an exception ending the run with its traceback
import gc
import sys

_plug = None
_msg = bytearray(b"machine-double: credit=0000000\n")
_n = _lo = _hi = _a1 = _d = 0
gc.collect()
_a0 = gc.mem_alloc()
import machine  # noqa: E402
import samd  # noqa: E402

machine._setup()
samd._setup()
del machine, samd
gc.collect()
_d = gc.mem_alloc() - _a0

import vfs  # noqa: E402

vfs.umount("/")
while sys.argv:
    sys.argv.pop()
gc.collect()
_a1 = gc.mem_alloc()
# The holes: setup's garbage and what the unix port made before us, freed, between live
# objects. The board has none of them (its heap is empty up to mp_init's few objects), so
# each is plugged with a live one-block tuple and the plugs are credited too: what follows
# sees one free run, as on the board. Holes = free blocks - the largest free run, found by
# allocating single tuples of growing size (one allocation each; a failure only leaves
# garbage, collected before the next try).
_lo, _hi = 0, gc.mem_free() // 4
while _hi - _lo > 1:
    _n = (_lo + _hi) // 2
    try:
        _plug = (None,) * _n
        _lo = _n
    except MemoryError:
        _hi = _n
    _plug = None
    gc.collect()
_n = gc.mem_free() // 16 - (8 + 4 * _lo + 15) // 16
while _n > 0:
    _plug = (_plug,)
    _n -= 1
gc.collect()
_n = _d + gc.mem_alloc() - _a1
_lo = len(_msg) - 2
while _lo > 22:
    _msg[_lo] = 48 + _n % 10
    _n //= 10
    _lo -= 1
sys.stderr.write(_msg)
del _msg, _n, _lo, _hi, _a0, _a1, _d

# ---- firmware/boards/ARDUINO_MKR_GSM_1400/modules/_boot.py (the port's, progsize=64) ----
import samd  # noqa: E402

bdev = samd.Flash()

# Try to mount the filesystem, and format the flash if it doesn't exist.
fs_type = vfs.VfsLfs2 if hasattr(vfs, "VfsLfs2") else vfs.VfsLfs1

try:
    fs = fs_type(bdev, progsize=64)
except:  # noqa: E722  (as _boot.py)
    fs_type.mkfs(bdev, progsize=64)
    fs = fs_type(bdev, progsize=64)
vfs.mount(fs, "/")
sys.path.append("/lib")

del fs, fs_type, bdev, vfs, samd, sys
gc.collect()
# ---- end of _boot.py (which also deletes gc; kept here for the probe, deleted below) ----

import os  # noqa: E402

if int(os.getenv("ZTP_HEAP_PROBE") or "0"):
    import sys  # noqa: E402

    sys.stderr.write("machine-double: probe boot alloc=%d free=%d\n"
                     % (gc.mem_alloc(), gc.mem_free()))
    del sys
del gc

# pyexec_file_if_exists("boot.py"), then (boot.py did not fail) pyexec_file_if_exists("main.py"):
# compiled from the file into these globals. The name is made at run time (the board interns
# it in its heap's qstr pool; a literal here would be a frozen, ROM qstr); it stays referenced
# while main.py runs (about 32 B the board does not hold: the run is that much stricter), and
# __file__ is not set (pyexec sets it to that qstr: one dict entry).
try:
    os.stat("boot.py")
    _run = True
except OSError:
    _run = False
if _run:
    execfile(b"boot.py".decode())  # noqa: F821  (MicroPython builtin)
try:
    os.stat("main.py")
    _run = True
except OSError:
    _run = False
del os
if _run:
    del _run
    execfile(b"main.py".decode())  # noqa: F821
