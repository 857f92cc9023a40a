# The MKR GSM 1400 image: the board's _boot.py (the samd port's, littlefs with progsize=64:
# see modules/_boot.py) and the ZTP firmware, lib/ frozen (firmware/manifest.py).
freeze("$(BOARD_DIR)/modules")
include("$(BOARD_DIR)/../../manifest.py")
