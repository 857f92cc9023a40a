"""Host side of the device firmware: run lib/ against a modem through pyserial, build and
flash the firmware, and the firmware checks (mpy-cross, SAMD21 features, MicroPython run)."""

from ztp.device._host import HostClock, SerialUart, load_firmware, run_provisioning

__all__ = ["HostClock", "SerialUart", "load_firmware", "run_provisioning"]
