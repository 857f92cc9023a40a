# board: everything that touches the hardware (the only module importing `machine`).
#
# Profiles:
#   MKR_GSM_1400  SAMD21G18 + u-blox SARA-U201 (2G/3G). The SARA is on SERCOM2 with RTS/CTS;
#                 GSM_RESETN held high 100 ms then low starts the module (reference sketch).
#                 Pin names are SAMD21 CPU pins (the generic SAMD21x18 MicroPython board has no
#                 MKR names). (assumed) pins from the Arduino MKR GSM 1400 variant: GSM_TX PA12,
#                 GSM_RX PA13, GSM_RTS PA14, GSM_CTS PA15, GSM_RESETN PA27, LED PA20: check
#                 them against the schematic before trusting a board with them.
#   GENERIC       any board with a modem on UART 1 and no flow control (the firmware sends
#                 AT&K0 so the modem does not wait for RTS).
# UART receive buffer: a +CSIM: line for a 256-byte answer is ~530 characters, MicroPython's
# default rxbuf is 256, so rxbuf >= 600.

import time

import machine

MKR_GSM_1400 = {
    "name": "MKR GSM 1400", "uart": 2, "baud": 115200, "tx": "PA12", "rx": "PA13",
    "rts": "PA14", "cts": "PA15", "resetn": "PA27", "alarm": "PA20", "lte": False,
    "flow_control": True, "rxbuf": 640,
}
GENERIC = {
    "name": "generic", "uart": 1, "baud": 115200, "tx": None, "rx": None, "rts": None,
    "cts": None, "resetn": None, "alarm": None, "lte": False, "flow_control": False,
    "rxbuf": 640,
}
PROFILES = {"mkrgsm1400": MKR_GSM_1400, "generic": GENERIC}


class Clock:
    # ticks_ms / sleep_ms, feeding the watchdog while sleeping
    def __init__(self, wdt=None):
        self.wdt = wdt

    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        wdt = self.wdt
        while ms > 0:
            step = 1000 if ms > 1000 else ms
            time.sleep_ms(step)
            ms -= step
            if wdt is not None:
                wdt.feed()


class Board:
    def __init__(self, profile, wdt_ms=0):
        self.profile = profile
        self.wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None
        self.clock = Clock(self.wdt)
        self._resetn = None
        if profile["resetn"]:
            self._resetn = machine.Pin(profile["resetn"], machine.Pin.OUT, value=0)
        self.uart = self._uart()

    def _uart(self):
        p = self.profile
        kw = {"baudrate": p["baud"], "rxbuf": p["rxbuf"], "timeout": 0}
        if p["tx"]:
            kw["tx"] = machine.Pin(p["tx"])
            kw["rx"] = machine.Pin(p["rx"])
        if p["flow_control"] and p["rts"]:
            kw["rts"] = machine.Pin(p["rts"])
            kw["cts"] = machine.Pin(p["cts"])
            kw["flow"] = machine.UART.RTS | machine.UART.CTS
        return machine.UART(p["uart"], **kw)

    def power_on_modem(self):
        # GSM_RESETN: high 100 ms, then low (MKR GSM 1400 reference sketch)
        if self._resetn is not None:
            self._resetn.value(1)
            self.clock.sleep_ms(100)
            self._resetn.value(0)

    def device_id(self):
        # raw bytes of the MCU's unique id (16 bytes on the SAMD21): the SAFE2 DeviceID
        return machine.unique_id()

    def pin_out(self, name):
        n = self.profile.get(name)
        if not n:
            return None
        return machine.Pin(n, machine.Pin.OUT, value=0)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def rng(self, n):
        # n random-ish bytes for backoff jitter (the SAMD21 has no TRNG): os.urandom when
        # the port has it, else the unique id mixed with the tick counter
        try:
            import os
            return os.urandom(n)
        except (ImportError, AttributeError, OSError):
            pass
        x = time.ticks_us() ^ (self.device_id()[0] << 16)
        out = bytearray(n)
        for i in range(n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            out[i] = (x >> 16) & 0xFF
        return out

    def reset(self):
        machine.reset()
