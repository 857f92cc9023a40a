# board: everything that touches the hardware (the only module importing `machine`).
#
# Profiles:
#   MKR_GSM_1400  SAMD21G18 + u-blox SARA-U201 (2G/3G). Pin names are SAMD21 CPU pins (the
#                 generic SAMD21x18 MicroPython board has no MKR names), from the Arduino
#                 MKR GSM 1400 variant (ArduinoCore-samd variants/mkrgsm1400): GSM_TX PA12
#                 (SERCOM2 or 4 pad 0), GSM_RX PA13 (pad 1), GSM_RTS PA14 (pad 2), GSM_CTS PA15
#                 (pad 3), GSM_RESETN PB08 (PA27 is the PMIC interrupt), LED PA20. GSM_RESETN
#                 held high 100 ms then low starts the module (reference sketch).
#   GENERIC       a modem on UART 1 without flow control (the firmware sends AT&K0) on a port
#                 whose UART(1) has default pins (esp32, rp2, stm32). Not for samd: its UART
#                 needs tx= and rx= (ValueError "Non-matching or missing rx/tx"): copy the
#                 profile with the pins.
# UART (MicroPython ports/samd/machine_uart.c): id = SERCOM number; tx=/rx= required, on the
# same SERCOM (tx on pad 0, or 2 on the SAMD21); rts=/cts= exist only in builds with
# MICROPY_HW_UART_RTSCTS (SAMD21: only boards built for 248K code; not SAMD_GENERIC_D21X18),
# and giving them is what turns flow control on (RTS on pad 2, CTS on pad 3); no flow= and no
# UART.RTS/CTS constants there (ports that have them, e.g. rp2, esp32, get flow= too). A
# build without RTS/CTS refuses the keywords (TypeError): the UART is then made without, and
# the modem is told AT&K0 (Board.flow_control False).
# Receive buffer: a +CSIM: line for a 256-byte answer is ~530 characters, MicroPython's
# default rxbuf is 256, so rxbuf >= 600.

import time

import machine

MKR_GSM_1400 = {
    "name": "MKR GSM 1400", "uart": 2, "baud": 115200, "tx": "PA12", "rx": "PA13",
    "rts": "PA14", "cts": "PA15", "resetn": "PB08", "alarm": "PA20", "lte": False,
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
    # flow_control: RTS/CTS in use (the profile asked for it and the UART took it)
    def __init__(self, profile, wdt_ms=0, log=None):
        self.profile = profile
        self.wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None
        self.clock = Clock(self.wdt)
        self._resetn = None
        if profile["resetn"]:
            self._resetn = machine.Pin(profile["resetn"], machine.Pin.OUT, value=0)
        self.flow_control = bool(profile["flow_control"] and profile["rts"])
        self.uart = self._uart(log)

    def _uart(self, log):
        p = self.profile
        U = machine.UART
        kw = {"baudrate": p["baud"], "rxbuf": p["rxbuf"], "timeout": 0}
        if p["tx"]:
            kw["tx"] = machine.Pin(p["tx"])
            kw["rx"] = machine.Pin(p["rx"])
        if self.flow_control:
            fc = {"rts": machine.Pin(p["rts"]), "cts": machine.Pin(p["cts"])}
            if hasattr(U, "RTS"):
                fc["flow"] = U.RTS | U.CTS
            fc.update(kw)
            try:
                return U(p["uart"], **fc)
            except (TypeError, ValueError) as e:
                self.flow_control = False
                if log:
                    log("UART %d without RTS/CTS (%s): AT&K0" % (p["uart"], e))
        return U(p["uart"], **kw)

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
