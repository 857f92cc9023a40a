# board: everything that touches the hardware (the only module importing `machine`).
#
# Profiles (profile(name) builds the one in use; only it lives on the heap):
#   mkrgsm1400  Arduino MKR GSM 1400: SAMD21G18 + u-blox SARA-U201 (2G/3G), pins from Arduino's
#               variant (ArduinoCore-samd variants/mkrgsm1400): GSM_TX PA12, GSM_RX PA13,
#               GSM_RTS PA14, GSM_CTS PA15 on SERCOM4 pads 0-3 (peripheral D; UART id 4, as
#               Arduino's Serial2), GSM_RESETN PB08, GSM_DTR PA28, I2C on SERCOM2 (SDA PA08,
#               SCL PA09: the BQ24195L PMIC at 0x6B and the crypto chip), ADC_VBAT PB09,
#               LED PA20. CPU pin names, so the generic SAMD21 build works too.
#   generic     a modem on UART 1 without flow control on a port whose UART(1) has default
#               pins (esp32, rp2, stm32); no PMIC, no reset line.
# Power-up order on the MKR (Arduino's initVariant, then MKRGSM's ModemClass::begin): PMIC
# over I2C (battery sensed on ADC_VBAT), GSM_RESETN held high (modem in reset), GSM_DTR low,
# the UART with RTS/CTS (or GSM_RTS driven low as a GPIO where the build has no RTS/CTS), then
# power_on_modem() pulses GSM_RESETN. Nothing is written to the modem before all of that.
# UART (MicroPython ports/samd/machine_uart.c): id = SERCOM number; tx=/rx= required; rts=/cts=
# only in builds with MICROPY_HW_UART_RTSCTS (this repository's ARDUINO_MKR_GSM_1400 board has
# it), and giving both is what turns flow control on; no flow= and no UART.RTS/CTS there
# (ports that have them, e.g. rp2, esp32, get flow= too). Without RTS/CTS the firmware sends
# AT&K0 and reads each reply before the next command, so a 320-byte ring holds the longest
# +CSIM: line (~280 bytes: apdu reads answers in 128-byte pieces); with RTS/CTS the SERCOM
# holds the modem back and 128 B suffice. The TX ring is 64 B (the port's default is 256):
# modem.Link finishes a longer command as the ring drains. Both rings are on the GC heap.
# Watchdog: the samd port clamps the timeout to 512..16384 ms and rounds it down to a power of
# two (wdt_period_ms); it cannot be stopped once armed.

import time

import machine
from micropython import const

_PMIC_ADDR = const(0x6B)          # TI BQ24195L
_VBAT_PRESENT = const(38400)      # Arduino: analogRead(ADC_BATTERY) > 600 of 1023, in u16


def profile(name):
    if name == "mkrgsm1400":
        return {"name": "MKR GSM 1400", "uart": 4, "baud": 115200, "tx": "PA12", "rx": "PA13",
                "rts": "PA14", "cts": "PA15", "resetn": "PB08", "dtr": "PA28", "alarm": "PA20",
                "i2c": 2, "sda": "PA08", "scl": "PA09", "vbat": "PB09", "lte": False,
                "flow_control": True}
    if name == "generic":
        return {"name": "generic", "uart": 1, "baud": 115200, "tx": None, "rx": None,
                "rts": None, "cts": None, "resetn": None, "dtr": None, "alarm": None,
                "i2c": None, "lte": False, "flow_control": False}
    raise ValueError("unknown board profile %s" % name)


def detect(machine_name, platform):
    # the profile for this board: our MKR image names itself "Arduino MKR GSM 1400"; on any
    # other samd build the MKR profile is the only samd one; every other port gets generic
    if "MKR GSM 1400" in machine_name or platform == "samd":
        return "mkrgsm1400"
    return "generic"


def wdt_period_ms(ms):
    # what the samd port arms for WDT(timeout=ms): clamped, rounded down to 2**n
    ms = 512 if ms < 512 else 16384 if ms > 16384 else ms
    p = 512
    while p * 2 <= ms:
        p *= 2
    return p


class Board:
    # flow_control: RTS/CTS in use (the profile asked for it and the UART took it).
    # clock: the board itself (ticks_ms / sleep_ms, the watchdog fed while sleeping): one
    # class less on the heap than a Clock of its own
    def __init__(self, profile, wdt_ms=0, log=None):
        self.profile = profile
        self.log = log
        self.wdt = machine.WDT(timeout=wdt_ms) if wdt_ms else None
        self.clock = self
        if profile["i2c"] is not None:
            self._pmic()
        self._resetn = self._out("resetn", 1)      # modem held in reset until power_on_modem
        self._out("dtr", 0)
        self.flow_control = bool(profile["flow_control"] and profile["rts"])
        self.uart = self._uart()
        # what resets a modem that stopped answering (None: the firmware sends AT+CFUN=16)
        self.modem_power = self.power_on_modem if self._resetn is not None else None

    def _out(self, name, v):
        n = self.profile.get(name)
        return machine.Pin(n, machine.Pin.OUT, value=v) if n else None

    def _say(self, msg):
        if self.log:
            self.log(msg)

    def _pmic(self):
        # Arduino's initVariant for the MKR GSM 1400: sense the battery on ADC_VBAT (pin
        # pulled low 10 ms first), then REG01 = 0x1B (charge, minimum system 3.5 V) if one is
        # there, REG07 = 0x0B (0x2B: battery FET off without a battery), REG00 = 0x07 (input
        # limits 3.88 V / 3 A): the SARA's 2 A transmit bursts need the input current limit
        p = self.profile
        try:
            machine.Pin(p["vbat"], machine.Pin.OUT, value=0)
            time.sleep_ms(10)
            machine.Pin(p["vbat"], machine.Pin.IN)
            time.sleep_ms(100)
            battery = machine.ADC(machine.Pin(p["vbat"])).read_u16() > _VBAT_PRESENT
            i2c = machine.I2C(p["i2c"], scl=machine.Pin(p["scl"]), sda=machine.Pin(p["sda"]),
                              freq=100000)
            if battery:
                i2c.writeto_mem(_PMIC_ADDR, 0x01, b"\x1b")
            i2c.writeto_mem(_PMIC_ADDR, 0x07, b"\x0b" if battery else b"\x2b")
            i2c.writeto_mem(_PMIC_ADDR, 0x00, b"\x07")
            self._say("PMIC set (battery %s)" % ("present" if battery else "absent"))
        except OSError as e:
            # no answer from the PMIC: the modem may brown out on transmit; go on and say so
            self._say("PMIC not set: %s" % e)

    def _uart(self):
        p = self.profile
        U = machine.UART
        kw = {"baudrate": p["baud"], "rxbuf": 320, "txbuf": 64, "timeout": 0}
        if p["tx"]:
            kw["tx"] = machine.Pin(p["tx"])
            kw["rx"] = machine.Pin(p["rx"])
        if self.flow_control:
            fc = {"rts": machine.Pin(p["rts"]), "cts": machine.Pin(p["cts"])}
            if hasattr(U, "RTS"):
                fc["flow"] = U.RTS | U.CTS
            fc.update(kw)
            fc["rxbuf"] = 128
            try:
                return U(p["uart"], **fc)
            except (TypeError, ValueError) as e:
                self.flow_control = False
                self._say("UART %d without RTS/CTS (%s): GSM_RTS held low, AT&K0"
                          % (p["uart"], e))
        if p["rts"]:
            # the modem starts with AT&K3 and holds its output while RTS is off: assert it
            # (low) by hand, as Arduino's Uart does, until AT&K0 turns flow control off
            machine.Pin(p["rts"], machine.Pin.OUT, value=0)
        return U(p["uart"], **kw)

    def power_on_modem(self):
        # GSM_RESETN (high = modem in reset), MKRGSM's ModemClass::begin: high 150 us, low
        # 3 ms, high 600 ms, then low: the SARA boots (it answers AT a few seconds later).
        # Also the recovery for a modem that stopped answering (Provisioner modem_power).
        r = self._resetn
        r.value(1)
        time.sleep_us(150)
        r.value(0)
        time.sleep_ms(3)
        r.value(1)
        self.clock.sleep_ms(600)
        r.value(0)

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

    def device_id(self):
        # raw bytes of the MCU's unique id (16 bytes on the SAMD21): the SAFE2 DeviceID
        return machine.unique_id()

    def pin_out(self, name):
        return self._out(name, 0)

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
