# lib/board.py with a fake `machine` (FakeMachine below, installed as sys.modules["machine"])
# and a fake `time` (runs under pytest and MicroPython). The fakes live here, not in fw_fakes:
# more module-level code there shifts the heap figure of `ztp firmware-check` (qstr pool fill).
import sys

import fw_fakes


class FakeMachine:
    # Stand-in for MicroPython's `machine` (what lib/board.py uses), installed as
    # sys.modules["machine"]. uart_kw: the keywords the port's UART accepts (samd without
    # MICROPY_HW_UART_RTSCTS: no rts/cts; with it: rts/cts; other ports: flow too, with
    # UART.RTS/CTS); anything else is a TypeError as from mp_arg_parse_all. uart_factory()
    # -> the object UART() returns (e.g. a FakeModem). events: ("pin", name, v), ("uart", id,
    # kw), ("wdt", timeout), ("feed",), ("i2c", addr, reg, data), ("write", n) for bytes
    # written to a UART, in order. vbat: ADC_VBAT's read_u16(); pmic_ok False: the PMIC does
    # not acknowledge (OSError ENODEV, as machine.I2C on samd).
    def __init__(self, uid=b"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
                 rtscts=True, flow_consts=False, uart_factory=None, vbat=52000, pmic_ok=True):
        m = self
        self.uid = uid
        self.events = []
        self.pins = {}
        self.uarts = []
        allowed = ["baudrate", "bits", "parity", "stop", "tx", "rx", "timeout",
                   "timeout_char", "rxbuf", "txbuf"]
        if rtscts:
            allowed += ["rts", "cts"]
        if flow_consts:
            allowed.append("flow")

        class Pin:
            OUT = 1
            IN = 0

            def __init__(self, name, mode=-1, value=None):
                self.name = name
                self.mode = mode
                self.v = value
                m.pins[name] = self
                if value is not None:
                    m.events.append(("pin", name, value))

            def value(self, v=None):
                if v is None:
                    return self.v
                self.v = v
                m.events.append(("pin", self.name, v))

        class UART:
            def __init__(self, uid, **kw):
                for k in kw:
                    if k not in allowed:
                        raise TypeError("unexpected keyword argument '%s'" % k)
                if ("rts" in kw) != ("cts" in kw):
                    raise ValueError("cts missing for flow control")
                if not ("tx" in kw and "rx" in kw):
                    raise ValueError("Non-matching or missing rx/tx")
                self.id = uid
                self.kw = kw
                m.uarts.append(self)
                m.events.append(("uart", uid, kw))
                self.dev = uart_factory() if uart_factory else None

            def write(self, b):
                n = self.dev.write(b)
                m.events.append(("write", n))
                return n

            def any(self):
                return self.dev.any()

            def readinto(self, buf, n=-1):
                return self.dev.readinto(buf, n)

        if flow_consts:
            UART.RTS = 2
            UART.CTS = 1

        class WDT:
            def __init__(self, timeout=0):
                self.timeout = timeout
                m.events.append(("wdt", timeout))

            def feed(self):
                m.events.append(("feed",))

        class I2C:
            def __init__(self, i2c_id, scl=None, sda=None, freq=400000):
                self.id = i2c_id
                self.pins = (scl.name, sda.name)
                self.freq = freq

            def writeto_mem(self, addr, reg, data):
                if not pmic_ok:
                    raise OSError(19)
                m.events.append(("i2c", addr, reg, bytes(data)))

        class ADC:
            def __init__(self, pin):
                self.pin = pin

            def read_u16(self):
                m.events.append(("adc", self.pin.name))
                return vbat

        self.Pin = Pin
        self.UART = UART
        self.WDT = WDT
        self.I2C = I2C
        self.ADC = ADC
        self.resets = 0

    def unique_id(self):
        return self.uid

    def reset(self):
        self.resets += 1


class FakeTime:
    # Stand-in for MicroPython's `time` over a FakeClock (ticks_ms / sleep_ms / ticks_diff)
    def __init__(self, clock):
        self.clock = clock
        self.sleeps = []

    def ticks_ms(self):
        return self.clock.ticks_ms()

    def ticks_us(self):
        return self.clock.ticks_ms() * 1000

    def ticks_diff(self, a, b):
        return a - b

    def sleep_ms(self, ms):
        self.sleeps.append(ms)
        self.clock.sleep_ms(ms)

    def sleep_us(self, us):
        self.sleeps.append(us / 1000)



def load(**kw):
    # -> (board module, fake machine, fake time); board imported afresh over the fakes
    m = FakeMachine(**kw)
    sys.modules["machine"] = m
    if "board" in sys.modules:
        del sys.modules["board"]
    import board
    t = FakeTime(fw_fakes.FakeClock(1000))
    board.time = t
    return board, m, t


def unload():
    for name in ("board", "machine"):
        if name in sys.modules:
            del sys.modules[name]


# without flow control the UART ring must hold the longest line the firmware reads whole: a
# +CSIM: answer of 128 data bytes + SW (apdu reads longer ones in pieces) with CR LF
LONGEST_LINE = len(b'+CSIM: 260,""\r\n') + 2 * 130


def mkr(board):
    return board.profile("mkrgsm1400")


def test_mkr_uart_is_sercom4_with_rts_cts_when_the_build_has_them():
    board, m, t = load(rtscts=True)
    try:
        logs = []
        b = board.Board(mkr(board), 0, logs.append)
        u = m.uarts[-1]
        assert u.id == 4              # SERCOM4: SERCOM2 belongs to I2C (PMIC), as in Arduino
        assert u.kw["baudrate"] == 115200 and u.kw["timeout"] == 0
        assert u.kw["rxbuf"] == 128   # the SERCOM holds the modem back with RTS
        assert u.kw["txbuf"] == 64    # modem.Link finishes longer commands as it drains
        assert u.kw["tx"].name == "PA12" and u.kw["rx"].name == "PA13"
        assert u.kw["rts"].name == "PA14" and u.kw["cts"].name == "PA15"
        assert "flow" not in u.kw          # samd: no flow= keyword, no UART.RTS/CTS
        assert b.flow_control and b.uart is u
        assert "PA14" not in m.pins or m.pins["PA14"].mode == -1   # not a GPIO
    finally:
        unload()


def test_mkr_power_up_order_pmic_reset_dtr_then_uart():
    # Arduino's initVariant: battery sensed, PMIC written (REG01 charge, REG07 FET, REG00
    # input limits), GSM_RESETN high (modem in reset), GSM_DTR low, then the modem's UART.
    # Before: no PMIC write at all, DTR floating, GSM_RESETN low from the start.
    board, m, t = load(vbat=52000)
    try:
        board.Board(mkr(board), 0, None)
        ev = [e for e in m.events if e[0] in ("i2c", "uart", "adc") or
              (e[0] == "pin" and e[1] in ("PB08", "PA28"))]
        assert ev[0] == ("adc", "PB09")
        assert ev[1:4] == [("i2c", 0x6B, 0x01, b"\x1b"), ("i2c", 0x6B, 0x07, b"\x0b"),
                           ("i2c", 0x6B, 0x00, b"\x07")]
        assert ev[4:6] == [("pin", "PB08", 1), ("pin", "PA28", 0)]
        assert ev[6][0] == "uart"
    finally:
        unload()


def test_pmic_without_battery_turns_the_battery_fet_off_and_does_not_charge():
    board, m, t = load(vbat=1000)
    try:
        board.Board(mkr(board), 0, None)
        writes = [e for e in m.events if e[0] == "i2c"]
        assert writes == [("i2c", 0x6B, 0x07, b"\x2b"), ("i2c", 0x6B, 0x00, b"\x07")]
    finally:
        unload()


def test_pmic_not_answering_is_logged_and_the_board_still_starts():
    board, m, t = load(pmic_ok=False)
    try:
        logs = []
        b = board.Board(mkr(board), 0, logs.append)
        assert b.uart is m.uarts[-1]
        assert any("PMIC not set" in x for x in logs)
    finally:
        unload()


def test_mkr_uart_without_rtscts_drives_gsm_rts_low():
    # SAMD_GENERIC_D21X18: MICROPY_HW_UART_RTSCTS is 0, rts= is a TypeError. The SARA starts
    # with AT&K3 and holds its output while RTS is off: before, GSM_RTS floated and the modem
    # never answered. Now GSM_RTS (PA14) is a GPIO driven low before the UART exists.
    board, m, t = load(rtscts=False)
    try:
        logs = []
        b = board.Board(mkr(board), 0, logs.append)
        u = m.uarts[-1]
        assert "rts" not in u.kw and "cts" not in u.kw and "flow" not in u.kw
        assert u.kw["rxbuf"] >= LONGEST_LINE and u.kw["tx"].name == "PA12"
        assert not b.flow_control
        assert m.pins["PA14"].v == 0 and m.pins["PA14"].mode == m.Pin.OUT
        i_rts = m.events.index(("pin", "PA14", 0))
        i_uart = [k for k, e in enumerate(m.events) if e[0] == "uart"][-1]
        assert i_rts < i_uart
        assert any("without RTS/CTS" in x and "AT&K0" in x for x in logs)
    finally:
        unload()


def test_ports_with_flow_constants_get_flow_too():
    board, m, t = load(rtscts=True, flow_consts=True)
    try:
        b = board.Board(mkr(board))
        u = m.uarts[-1]
        assert u.kw["flow"] == m.UART.RTS | m.UART.CTS
        assert b.flow_control
    finally:
        unload()


def test_generic_profile_no_flow_control():
    board, m, t = load()
    try:
        # samd needs tx/rx: the generic profile is for ports with default UART pins
        e = fw_fakes.raises(ValueError, board.Board, board.profile("generic"))
        assert "rx/tx" in str(e)
        prof = board.profile("generic")
        prof["tx"] = "PA22"
        prof["rx"] = "PA23"
        b = board.Board(prof)
        u = m.uarts[-1]
        assert u.id == 1 and "rts" not in u.kw and u.kw["rxbuf"] >= LONGEST_LINE
        assert not b.flow_control and b.modem_power is None
        assert not [e for e in m.events if e[0] == "i2c"]
    finally:
        unload()


def test_profile_by_board_name_and_platform():
    board, m, t = load()
    try:
        assert board.detect("Arduino MKR GSM 1400 with SAMD21G18A", "samd") == "mkrgsm1400"
        assert board.detect("Generic SAMD21J18 with SAMD21J18A", "samd") == "mkrgsm1400"
        assert board.detect("Raspberry Pi Pico with RP2040", "rp2") == "generic"
        assert board.detect("ESP32 module with ESP32", "esp32") == "generic"
        e = fw_fakes.raises(ValueError, board.profile, "nope")
        assert "nope" in str(e)
    finally:
        unload()


def test_device_id_is_the_unique_id_bytes():
    board, m, t = load(uid=bytes(range(16)))
    try:
        b = board.Board(mkr(board))
        assert b.device_id() == bytes(range(16))
        assert len(b.rng(4)) == 4
    finally:
        unload()


def test_mkr_resetn_sequence_as_mkrgsm():
    # MKRGSM ModemClass::begin: high 150 us, low 3 ms, high 600 ms, then low (high = reset).
    # Before: high 100 ms then low.
    board, m, t = load()
    try:
        b = board.Board(mkr(board))
        assert m.pins["PB08"].v == 1                   # held in reset from the start
        pin = m.pins["PB08"]
        seen = []

        def sleep(ms):
            seen.append((pin.v, ms))
        t.sleep_ms = sleep
        t.sleep_us = lambda us: seen.append((pin.v, us / 1000))
        b.clock.sleep_ms = sleep
        del m.events[:]
        assert b.modem_power == b.power_on_modem
        b.modem_power()
        assert [e for e in m.events if e[0] == "pin"] == [
            ("pin", "PB08", 1), ("pin", "PB08", 0), ("pin", "PB08", 1), ("pin", "PB08", 0)]
        assert seen == [(1, 0.15), (0, 3), (1, 600)]
        assert pin.v == 0
    finally:
        unload()


def test_watchdog_period_as_the_samd_port_rounds_it():
    board, m, t = load()
    try:
        assert board.wdt_period_ms(16000) == 8192
        assert board.wdt_period_ms(16384) == 16384
        assert board.wdt_period_ms(60000) == 16384
        assert board.wdt_period_ms(100) == 512
        assert board.wdt_period_ms(1000) == 512
    finally:
        unload()


def test_watchdog_armed_and_fed_while_sleeping():
    board, m, t = load()
    try:
        b = board.Board(mkr(board), wdt_ms=16384)
        assert ("wdt", 16384) in m.events
        del m.events[:]
        b.feed()
        assert m.events == [("feed",)]
        del m.events[:]
        t.sleeps = []
        b.clock.sleep_ms(2500)                  # fed after every second slept
        assert m.events == [("feed",), ("feed",), ("feed",)]
        assert t.sleeps == [1000, 1000, 500]
        b2 = board.Board(mkr(board))    # wdt_ms=0: no watchdog
        assert b2.wdt is None
        b2.feed()
    finally:
        unload()


def test_alarm_pin_and_reset():
    board, m, t = load()
    try:
        b = board.Board(mkr(board))
        p = b.pin_out("alarm")
        assert p.name == "PA20" and p.v == 0
        assert b.pin_out("no such pin") is None
        b.reset()
        assert m.resets == 1
    finally:
        unload()
