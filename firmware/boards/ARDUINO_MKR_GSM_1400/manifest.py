# The MKR GSM 1400 image: the samd port's _boot.py (mounts the littlefs file system on the
# internal flash) and the ZTP firmware, lib/ frozen (firmware/manifest.py).
include("$(PORT_DIR)/boards/manifest.py")
include("$(BOARD_DIR)/../../manifest.py")
