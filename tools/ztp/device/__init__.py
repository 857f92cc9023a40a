"""Host side of the device firmware: run lib/ against a modem through pyserial, build and
flash the firmware, and the firmware checks (mpy-cross, SAMD21 features, MicroPython run).

    load_firmware()["provision"]          # lib/ imported on the host (micropython shim)
    run_provisioning(SerialUart(ser), device_id, config_dir)
    build_mpy(out_dir)                    # lib/ through mpy-cross, as `ztp build`
    FIRMWARE, LIB, TESTS                  # the firmware tree, its lib/, its host tests
"""

from ._host import HostClock, SerialUart, load_firmware, run_provisioning
from ._mpy import FIRMWARE, LIB, TESTS, FirmwareCheckError, HeapReport, measure_heap
from ._mpy import build as build_mpy

__all__ = [
    "FIRMWARE",
    "LIB",
    "TESTS",
    "FirmwareCheckError",
    "HeapReport",
    "HostClock",
    "SerialUart",
    "build_mpy",
    "load_firmware",
    "measure_heap",
    "run_provisioning",
]
