# Freeze the ZTP firmware into a MicroPython build for the SAMD21 (MKR GSM 1400): the ~20 KB
# heap cannot hold lib/ compiled at run time. Build with the generic SAMD21x18 board:
#   make -C ports/samd BOARD=SAMD_GENERIC_D21X18 FROZEN_MANIFEST=/path/to/repo/firmware/manifest.py
# Bump the version whenever the bytecode changes.
metadata(description="SAFE2 zero-touch provisioning firmware", version="0.3.0")

include("$(PORT_DIR)/boards/manifest.py")

# one module per layer, see docs/firmware.md
for _m in ("board", "at", "modem", "apdu", "fs", "channel", "safe2", "config", "apply",
           "provision"):
    module(_m + ".py", base_path="../lib", opt=3)

# main.py stays a file on the board's flash (copied with mpremote), so it can be changed
# without rebuilding; boot.py likewise.
