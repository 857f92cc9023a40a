# Arduino MKR GSM 1400 (SAMD21G18A), built out of tree:
#   make -C ports/samd BOARD_DIR=/path/to/firmware/boards/ARDUINO_MKR_GSM_1400
# or `ztp build --image` (tools/ztp/firmware/_image.py), which also picks BUILD= and caches.
MCU_SERIES = SAMD21
CMSIS_MCU = SAMD21G18A
LD_FILES = boards/samd21x18a.ld sections.ld
# The image starts after Arduino's 8 KB SAM-BA bootloader (bossac --offset=0x2000).
TEXT0 = 0x2000

# Flash (256 KB, boards/samd21x18a.ld): 8 KB bootloader + code region + ROMFS (none) + the
# littlefs file system on the internal flash (the rest). 208K: the image with lib/ frozen used
# 199,824 B of it on 2026-12-07 (93.8%, 13 KB left for lib/ to grow) and the file system gets
# 256 - 8 - 208 = 40 KB (26 blocks of 1536 B). Bounds: at most 216K, so the file system keeps
# 32 KB; the SAMD21 default 184K overflows by 11 KB. `ztp build --image --codesize 212K`
# tries another size (multiples of 1K keep the file system row-aligned).
MICROPY_HW_CODESIZE ?= 208K
MICROPY_HW_ROMFS_BYTES ?= 0

# Features this board leaves out (mpconfigtrim.h wraps the port's mpconfigport.h).
CFLAGS += -DMP_CONFIGFILE='"mpconfigtrim.h"'

# The port's _boot.py + every lib/*.py (firmware/manifest.py).
FROZEN_MANIFEST ?= $(BOARD_DIR)/manifest.py
