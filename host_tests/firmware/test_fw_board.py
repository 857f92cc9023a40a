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
    # kw), ("wdt", timeout), ("feed",), in order.
    def __init__(self, uid=b"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
                 rtscts=True, flow_consts=False, uart_factory=None):
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
                return self.dev.write(b)

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

        self.Pin = Pin
        self.UART = UART
        self.WDT = WDT
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


def test_mkr_uart_rxbuf_pins_and_rts_cts_when_the_build_has_them():
    board, m, t = load(rtscts=True)
    try:
        logs = []
        b = board.Board(board.MKR_GSM_1400, 0, logs.append)
        u = m.uarts[-1]
        assert u.id == 2
        assert u.kw["rxbuf"] >= 600 and u.kw["baudrate"] == 115200 and u.kw["timeout"] == 0
        assert u.kw["tx"].name == "PA12" and u.kw["rx"].name == "PA13"
        assert u.kw["rts"].name == "PA14" and u.kw["cts"].name == "PA15"
        assert "flow" not in u.kw          # samd: no flow= keyword, no UART.RTS/CTS
        assert b.flow_control and b.uart is u
        assert logs == []
    finally:
        unload()


def test_mkr_uart_falls_back_to_no_flow_control_without_rtscts():
    # SAMD_GENERIC_D21X18 (184K code): MICROPY_HW_UART_RTSCTS is 0, rts= is a TypeError.
    # Before: the board layer passed rts/cts/flow (and read UART.RTS, missing on samd).
    board, m, t = load(rtscts=False)
    try:
        logs = []
        b = board.Board(board.MKR_GSM_1400, 0, logs.append)
        u = m.uarts[-1]
        assert "rts" not in u.kw and "cts" not in u.kw and "flow" not in u.kw
        assert u.kw["rxbuf"] >= 600 and u.kw["tx"].name == "PA12"
        assert not b.flow_control
        assert "without RTS/CTS" in logs[0] and "AT&K0" in logs[0]
    finally:
        unload()


def test_ports_with_flow_constants_get_flow_too():
    board, m, t = load(rtscts=True, flow_consts=True)
    try:
        b = board.Board(board.MKR_GSM_1400)
        u = m.uarts[-1]
        assert u.kw["flow"] == m.UART.RTS | m.UART.CTS
        assert b.flow_control
    finally:
        unload()


def test_generic_profile_no_flow_control():
    board, m, t = load()
    try:
        # samd needs tx/rx: the generic profile is for ports with default UART pins
        e = fw_fakes.raises(ValueError, board.Board, board.GENERIC)
        assert "rx/tx" in str(e)
        prof = dict(board.GENERIC)
        prof["tx"] = "PA22"
        prof["rx"] = "PA23"
        b = board.Board(prof)
        u = m.uarts[-1]
        assert u.id == 1 and "rts" not in u.kw and u.kw["rxbuf"] >= 600
        assert not b.flow_control
    finally:
        unload()


def test_device_id_is_the_unique_id_bytes():
    board, m, t = load(uid=bytes(range(16)))
    try:
        b = board.Board(board.MKR_GSM_1400)
        assert b.device_id() == bytes(range(16))
        assert len(b.rng(4)) == 4
    finally:
        unload()


def test_mkr_resetn_pulse_high_100ms_then_low():
    board, m, t = load()
    try:
        b = board.Board(board.MKR_GSM_1400)
        assert m.events[0] == ("pin", "PB08", 0)       # held low from the start
        del m.events[:]
        t.sleeps = []
        b.clock.sleep_ms = t.sleep_ms
        b.power_on_modem()
        assert m.events == [("pin", "PB08", 1), ("pin", "PB08", 0)]
        assert t.sleeps == [100]
        assert m.pins["PB08"].v == 0
    finally:
        unload()


def test_power_on_sleeps_between_high_and_low():
    # ordering: the 100 ms pass while GSM_RESETN is high
    board, m, t = load()
    try:
        b = board.Board(board.MKR_GSM_1400)
        seen = []
        pin = m.pins["PB08"]

        def sleep_ms(ms):
            seen.append((pin.v, ms))
        b.clock.sleep_ms = sleep_ms
        b.power_on_modem()
        assert seen == [(1, 100)]
    finally:
        unload()


def test_watchdog_armed_and_fed_while_sleeping():
    board, m, t = load()
    try:
        b = board.Board(board.MKR_GSM_1400, wdt_ms=16000)
        assert ("wdt", 16000) in m.events
        del m.events[:]
        b.feed()
        assert m.events == [("feed",)]
        del m.events[:]
        b.clock.sleep_ms(2500)                  # fed after every second slept
        assert m.events == [("feed",), ("feed",), ("feed",)]
        assert t.sleeps == [1000, 1000, 500]
        b2 = board.Board(board.MKR_GSM_1400)    # wdt_ms=0: no watchdog
        assert b2.wdt is None
        b2.feed()
    finally:
        unload()


def test_alarm_pin_and_reset():
    board, m, t = load()
    try:
        b = board.Board(board.MKR_GSM_1400)
        p = b.pin_out("alarm")
        assert p.name == "PA20" and p.v == 0
        assert b.pin_out("no such pin") is None
        b.reset()
        assert m.resets == 1
    finally:
        unload()
