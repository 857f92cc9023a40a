# The board-faithful heap run (see mpconfigvariant.h): a 32-bit unix build with littlefs v1
# and nothing the samd21 build lacks. Built by tools/ztp/firmware/_heap.py out of tree:
#   make -C ports/unix VARIANT_DIR=<repo>/firmware/host BUILD=<cache dir> \
#       MICROPY_MANIFEST_ZTP_GEN=<dir of the generated _ztp_board.py> \
#       CFLAGS_EXTRA=-I<dir of the generated ztp_board_config.h>
MICROPY_FORCE_32BIT = 1

FROZEN_MANIFEST ?= $(VARIANT_DIR)/manifest.py

MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_SOCKET = 0
MICROPY_PY_THREAD = 0
MICROPY_PY_TERMIOS = 0
MICROPY_PY_SSL = 0
MICROPY_SSL_MBEDTLS = 0
MICROPY_USE_READLINE = 0
# the samd build stores its messages uncompressed (the unix port's default compresses them)
MICROPY_ROM_TEXT_COMPRESSION = 0

# the samd21 file system: littlefs v1 only (ports/samd/mcu/samd21/mpconfigmcu.mk)
MICROPY_VFS_FAT = 0
MICROPY_VFS_LFS1 = 1
MICROPY_VFS_LFS2 = 0
