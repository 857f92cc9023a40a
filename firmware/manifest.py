# Freeze the ZTP firmware (every lib/*.py, bytecode at -O3: no line numbers, asserts removed)
# into a MicroPython image: the SAMD21's ~20 KB heap cannot hold lib/ compiled at run time.
# Port-neutral on purpose (no port manifest here): the board adds its own, e.g.
# firmware/boards/ARDUINO_MKR_GSM_1400/manifest.py = the board's _boot.py + this file.
# Build: `ztp build --image --out build/image` (see firmware/README.md).
# Bump the version whenever the bytecode changes.
metadata(description="SAFE2 zero-touch provisioning firmware", version="0.5.0")

import os  # noqa: E402  (manifests are exec'd with the manifest's directory as cwd)

# one module per layer, see docs/firmware.md; every .py in lib/ is frozen, so a new module
# (e.g. lib/ztpmain.py, the provisioning entry point) needs no change here
for _f in sorted(os.listdir("../lib")):
    if _f.endswith(".py"):
        module(_f, base_path="../lib", opt=3)

# main.py stays a file on the board's flash (copied with mpremote): a few lines that call the
# frozen ztpmain.run(app) and hold the user's app(), so it can be changed without rebuilding
# and almost nothing is compiled at boot; boot.py likewise.
