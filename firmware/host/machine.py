# machine: the host double of the samd port's `machine` module for the board-faithful heap run
# (frozen into the unix build of firmware/host; lib/board.py imports it as the board's).
#
# It enforces what MicroPython v1.28.0's samd port does (ports/samd: machine_pin.c, pin_af.c,
# machine_uart.c, machine_i2c.c, machine_adc.c, machine_wdt.c, modmachine.c) with the board's
# tables (_ztp_board, generated from pin-af-table.csv, the package's pins, pins.csv and
# mpconfigboard.h): pins by board or CPU name, UART pads and keywords (rts=/cts= only where the
# board compiles MICROPY_HW_UART_RTSCTS), ring buffers of rxbuf+1 / txbuf+1 bytes on the GC
# heap, the TX ring draining at the baud rate so that write() at timeout=0 returns a short count,
# the watchdog's rounding (clamp 512..16384 ms, then 2**floor(log2)).
#
# Wiring (read from the environment by _setup(), before the firmware runs):
#   ZTP_UART_PTY     the modem's pseudo-terminal (raw, VMIN=0 VTIME=0: set by the harness):
#                    the UART whose TX/RX are GSM_TX/GSM_RX (PA12/PA13) talks to it
#   ZTP_UNIQUE_ID    32 hex digits: machine.unique_id() (16 bytes on the SAMD21)
#   ZTP_VBAT_MV      battery voltage at ADC_VBAT (PB09) in mV, through the MKR's 330k/1M
#                    divider; 0 = no battery. Default 3900
#   ZTP_RESET_CAUSE  machine.reset_cause() (PM->RCAUSE); default 1 (power-on)
#   ZTP_HEAP_PROBE   "1": at each machine call collect and record the live heap (probe runs
#                    only: it changes when the GC runs)
#
# Heap: what the board holds in ROM (Pin objects, the WDT singleton) is made once in _setup()
# and its cost credited by the harness (ztp_powerup measures the double before and after);
# what the port allocates on the heap (the UART object and its rings, I2C, ADC objects,
# unique_id()'s bytes) the double allocates when the firmware asks, about as much. In steady
# state the double allocates nothing: ring indices in arrays, pty I/O through fixed views.
#
# Events (stderr, "machine-double: ..."): at the first byte written to the modem UART, whether
# the PMIC had been written over I2C and how RTS was handled before it (flow=rtscts: the UART
# has rts=/cts=; rts_pin_low: GSM_RTS (PA14) driven low as an output; none). A watchdog not
# fed within its period and machine.reset() end the process with _EXIT_WDT / _EXIT_RESET and
# a line saying which (checked at every call into this module: a firmware that hangs without
# calling it is ended by the harness's timeout).
#
# Abbreviations: FC = hardware flow control (RTS/CTS); pad = SERCOM pad; ALT C/D = the pin
# multiplexer's peripheral functions C and D (pin-af-table.csv columns SERCOM1/SERCOM2).

import gc
import os
import sys
import time
from array import array

from micropython import const

import _ztp_board as _B

_EXIT_RESET = const(70)
_EXIT_WDT = const(71)
_N_PINS = const(64)
_NO_PIN = const(255)
_N_SERCOM = const(6)

# Pin (machine_pin.c): GPIO_MODE_*, GPIO_PULL_* (hal_gpio.h)
_MODE_IN = const(0)
_MODE_OUT = const(1)
_MODE_OPEN_DRAIN = const(2)
_PULL_OFF = const(0)
_PULL_UP = const(1)
_PULL_DOWN = const(2)
_MUX_GPIO = const(255)
_ALT_C = const(2)   # ALT_FCT_SERCOM1 (pin_af.h: peripheral C)
_ALT_D = const(3)   # ALT_FCT_SERCOM2 (peripheral D)

# UART (machine_uart.c)
_DEFAULT_BAUD = const(115200)
_DEFAULT_BUF = const(256)
_MIN_BUF = const(32)
_MAX_BUF = const(32766)
_FLOW_RTS = const(1)
_FLOW_CTS = const(2)

# per-SERCOM UART fields in _u (array of ints, _F_N per SERCOM)
_F_BAUD = const(0)
_F_BITS = const(1)
_F_PARITY = const(2)    # 0 none, 1 odd, 2 even
_F_STOP = const(3)      # 0: 1 stop bit, 1: 2
_F_TX = const(4)
_F_RX = const(5)
_F_RTS = const(6)
_F_CTS = const(7)
_F_FLOW = const(8)
_F_TIMEOUT = const(9)
_F_TCHAR = const(10)
_F_RXLEN = const(11)
_F_TXLEN = const(12)
_F_RXGET = const(13)
_F_RXPUT = const(14)
_F_TXGET = const(15)
_F_TXPUT = const(16)
_F_NEW = const(17)
_F_BYTE_US256 = const(18)   # one character on the line, in 1/256 us
_F_TXLAST = const(19)       # ticks_us of the last TX drain
_F_TXCARRY = const(20)
_F_RXLAST = const(21)
_F_RXCARRY = const(22)
_F_N = const(23)

# I2C (machine_i2c.c), BQ24195L at 0x6B (TI SLUSBA1: REG00-REG0A)
_DEFAULT_I2C_FREQ = const(400000)
_DEFAULT_I2C_TIMEOUT = const(50000)
_ENODEV = const(19)
_ETIMEDOUT = const(110)
_PMIC = const(0x6B)
_CRYPTO = const(0x60)       # ATECC508A: answers its address; reads give 0xff here
_PMIC_NREG = const(11)
_PMIC_RO = const(8)         # REG08 (status), REG09 (fault), REG0A (part) are read-only

# WDT (machine_wdt.c)
_WDT_MIN = const(512)
_WDT_MAX = const(16384)

# ADC (machine_adc.c): 12 bits default, vref index 3 (AREFA) default on the SAMD21
_ADC_BITS = const(12)
_ADC_AVG = const(16)
_ADC_VREF = const(3)

# ---- state (made by _setup(); the harness credits its heap) --------------------------------
_pin_mode = bytearray(_N_PINS)
_pin_pull = bytearray(_N_PINS)
_pin_val = bytearray(_N_PINS)
_pin_mux = bytearray(b"\xff" * _N_PINS)
_pins = [None] * _N_PINS
_u = array("i", [0] * (_N_SERCOM * _F_N))
_u_rx = [None] * _N_SERCOM      # ring buffers, allocated by UART() on the heap as the port does
_u_tx = [None] * _N_SERCOM
_u_obj = [None] * _N_SERCOM     # MP_STATE_PORT(sercom_table): the port keeps the object alive
_u_kind = bytearray(_N_SERCOM)  # 0 unused, 1 UART, 2 I2C
_stage = bytearray(64)          # pty I/O staging and its views (1, 2, 4, ... 64 bytes)
_views = [None] * 7
_uid = bytearray(16)
_pmic_reg = bytearray(b"\x30\x1b\x60\x11\xb2\x9a\x03\x4b\x64\x00\x23")  # power-on defaults
_pmic_ptr = bytearray(1)
_pmic_log = bytearray(64)       # (register, value) of the first 32 writes
_ev = array("i", [0] * 13)      # events, see _E_*
_E_PMIC_WRITES = const(0)
_E_FIRST_BYTE = const(1)        # 1 once a byte went to the modem UART
_E_FLOW = const(2)              # 0 none, 1 rtscts, 2 rts_pin_low (at the first byte)
_E_PMIC_AT_FIRST = const(3)     # PMIC writes before the first modem byte
_E_MODEM_ID = const(4)          # SERCOM of the UART wired to the modem, -1 none
_E_RX_LOST = const(5)           # bytes lost: RX ring full without flow control
_E_WDT_PERIOD = const(6)        # 0 = not armed
_E_WDT_FED = const(7)           # ticks_ms of the last feed
_E_DEAD = const(8)
_E_VBAT = const(9)
_E_PROBE = const(10)
_E_PROBE_MAX = const(11)
_E_PROBE_CALLS = const(12)
_io = None                      # the modem's pty (file, r+b)
_vbat_pin = 41                  # PB09, or the board's ADC_VBAT
_rts_pin = 14                   # PA14, or the board's GSM_RTS
_resetn_pin = 40                # PB08, or the board's GSM_RESETN
_modem_tx = 12                  # PA12 / GSM_TX, PA13 / GSM_RX: the modem's lines
_modem_rx = 13
_sda_bus = 8                    # the bus the PMIC and crypto chip are on (SDA PA08, SCL PA09)
_scl_bus = 9
_reset_cause = 1


def _say(*parts):
    # one stderr line from constant pieces (no heap in steady state)
    w = sys.stderr.write
    w("machine-double: ")
    for p in parts:
        w(p)
    w("\n")


def _die(code, what):
    _ev[_E_DEAD] = code
    _say(what)
    raise SystemExit(code)


def _tick():
    # every call into the double: a dead board stays dead, a starving watchdog bites
    if _ev[_E_DEAD]:
        raise SystemExit(_ev[_E_DEAD])
    p = _ev[_E_WDT_PERIOD]
    if p and time.ticks_diff(time.ticks_ms(), _ev[_E_WDT_FED]) > p:
        _die(_EXIT_WDT, "WDT reset: not fed within its period (%d ms)" % p)
    if _ev[_E_PROBE]:
        # probe runs: the live heap at every call (collected first), the first call (after
        # the firmware's imports), and each new maximum
        gc.collect()
        a = gc.mem_alloc()
        _ev[_E_PROBE_CALLS] += 1
        if _ev[_E_PROBE_CALLS] == 1:
            _say("probe first_call alloc=", str(a))
        if a > _ev[_E_PROBE_MAX]:
            _ev[_E_PROBE_MAX] = a
            _say("probe max alloc=", str(a))


def _env_int(name, default):
    v = os.getenv(name)
    return int(v) if v else default


def _board_pin(name, default):
    for i in range(len(_B.BOARD_NAMES)):
        if _B.BOARD_NAMES[i] == name:
            return _B.BOARD_IDS[i]
    return default


def _setup():
    # the wiring, from the environment (see the header); called by ztp_powerup before the
    # firmware runs, and by ztp_fsinit / tests
    global _io, _vbat_pin, _rts_pin, _modem_tx, _modem_rx, _sda_bus, _scl_bus, _reset_cause
    global _resetn_pin
    for i in range(_N_PINS):
        if _B.CPU_NAMES[i]:
            _pins[i] = Pin._make(i)
    for k in range(7):
        _views[k] = memoryview(_stage)[0:1 << k]
    _vbat_pin = _board_pin("ADC_VBAT", 41)
    _rts_pin = _board_pin("GSM_RTS", 14)
    _resetn_pin = _board_pin("GSM_RESETN", 40)
    _modem_tx = _board_pin("GSM_TX", 12)
    _modem_rx = _board_pin("GSM_RX", 13)
    _sda_bus = _board_pin("SDA", 8)
    _scl_bus = _board_pin("SCL", 9)
    _ev[_E_MODEM_ID] = -1
    _ev[_E_VBAT] = _env_int("ZTP_VBAT_MV", 3900)
    _ev[_E_PROBE] = _env_int("ZTP_HEAP_PROBE", 0)
    _reset_cause = _env_int("ZTP_RESET_CAUSE", 1)
    uid = os.getenv("ZTP_UNIQUE_ID")
    if uid:
        h = uid.encode()
        for i in range(16):
            a = h[2 * i]
            b = h[2 * i + 1]
            _uid[i] = (a - 48 if a < 58 else (a | 32) - 87) << 4 | (
                b - 48 if b < 58 else (b | 32) - 87)
    path = os.getenv("ZTP_UART_PTY")
    if path:
        _io = open(path, "r+b")


# ---- the wires to the modem -----------------------------------------------------------------
def _wire(i):
    # What the modem sees of the MCU pins wired to it, one stderr line per change, forwarded
    # by the harness to the virtual modem (set_rts / set_reset_line): GSM_RTS is active low,
    # asserted by the SERCOM once the UART has it (hardware flow control) or by a GPIO output
    # driven low; GSM_RESETN high holds the modem in reset. Constant strings: no heap.
    if i == _rts_pin:
        on = _pin_mux[i] != _MUX_GPIO or (_pin_mode[i] == _MODE_OUT and not _pin_val[i])
        _say("wire rts=", "1" if on else "0")
    elif i == _resetn_pin and _pin_mode[i] == _MODE_OUT:
        _say("wire resetn=", "1" if _pin_val[i] else "0")


# ---- Pin ------------------------------------------------------------------------------------
def _find_pin(p):
    # pin_af.c pin_find: a Pin, a pin number (PAnn = nn, PBnn = 32 + nn), a board name, then
    # a CPU name; anything else is ValueError("not a Pin")
    if isinstance(p, Pin):
        return p._id
    if isinstance(p, int):
        if 0 <= p < _N_PINS and _B.CPU_NAMES[p]:
            return p
        raise ValueError("not a Pin")
    if isinstance(p, str):
        for i in range(len(_B.BOARD_NAMES)):
            if _B.BOARD_NAMES[i] == p:
                return _B.BOARD_IDS[i]
        for i in range(_N_PINS):
            if _B.CPU_NAMES[i] == p:
                return i
    raise ValueError("not a Pin")


class Pin:
    # machine_pin.c: Pin(id, mode=None, pull=None, *, value=None, drive=0); the objects are
    # the port's constant pin table (no heap), here made once by _setup()
    IN = _MODE_IN
    OUT = _MODE_OUT
    OPEN_DRAIN = _MODE_OPEN_DRAIN
    PULL_OFF = _PULL_OFF
    PULL_UP = _PULL_UP
    PULL_DOWN = _PULL_DOWN
    LOW_POWER = 0
    HIGH_POWER = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    @classmethod
    def _make(cls, i):
        o = object.__new__(cls)
        o._id = i
        return o

    def __new__(cls, id, mode=None, pull=None, *, value=None, drive=0):
        _tick()
        o = _pins[_find_pin(id)]
        if mode is not None or pull is not None or value is not None or drive != 0:
            o._init(mode, pull, value, drive)
        return o

    def _init(self, mode, pull, value, drive):
        i = self._id
        _pin_mux[i] = _MUX_GPIO                 # mp_hal_clr_pin_mux
        if value is not None:
            _pin_val[i] = 1 if value else 0
        if mode is not None:
            if mode == _MODE_OUT or mode == _MODE_OPEN_DRAIN:
                _pin_mode[i] = mode
            else:
                _pin_mode[i] = _MODE_IN         # "If no args are given, the Pin is 'input'"
                _pin_pull[i] = _PULL_OFF
        if pull is not None:
            if _pin_mode[i] == _MODE_OUT:
                raise ValueError("OUT incompatible with pull")
            _pin_pull[i] = pull
        if drive != 0 and drive != 1:
            raise ValueError("invalid argument(s) value")
        _wire(i)

    def init(self, mode=None, pull=None, *, value=None, drive=0):
        _tick()
        self._init(mode, pull, value, drive)

    def value(self, v=None):
        _tick()
        i = self._id
        if v is None:
            if _pin_mode[i] == _MODE_OUT:
                return _pin_val[i]
            return 1 if _pin_pull[i] == _PULL_UP else 0
        _pin_val[i] = 1 if v else 0
        _wire(i)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    high = on
    low = off

    def toggle(self):
        self.value(0 if _pin_val[self._id] else 1)


def _pin_low_output(i):
    return _pin_mux[i] == _MUX_GPIO and _pin_mode[i] == _MODE_OUT and not _pin_val[i]


def _sercom_config(pin, sercom):
    # pin_af.c get_sercom_config: peripheral C first, then D -> (alt, pad)
    c = _B.SERCOM_C[pin]
    if c != 0xFF and c >> 4 == sercom:
        return _ALT_C, c & 15
    d = _B.SERCOM_D[pin]
    if d != 0xFF and d >> 4 == sercom:
        return _ALT_D, d & 15
    raise ValueError("wrong serial device")


# ---- UART -----------------------------------------------------------------------------------
def _ring_count(s, get, put, size):
    n = _u[s + put] - _u[s + get]
    return n + size if n < 0 else n


class UART:
    # machine_uart.c. The modem is wired to GSM_TX/GSM_RX: a UART on those pins (any SERCOM
    # that reaches them) talks to the modem's pty; any other UART talks to nothing.
    def __init__(self, id=_B.DEFAULT_UART_ID, baudrate=-1, bits=-1, parity=-1, stop=-1, *,
                 tx=None, rx=None, timeout=-1, timeout_char=-1, rxbuf=-1, txbuf=-1,
                 rts=None, cts=None):
        _tick()
        if id < 0 or id >= _N_SERCOM:
            # the port checks id > SERCOM_INST_NUM (so 6 passes, then indexes past its
            # table); 6 is refused here
            raise ValueError("UART(%d) doesn't exist" % id)
        if not _B.UART_RTSCTS and (rts is not None or cts is not None):
            # no MICROPY_HW_UART_RTSCTS: the keywords do not exist
            raise TypeError("unexpected keyword argument '%s'" % ("rts" if rts else "cts"))
        self._s = id * _F_N
        s = self._s
        # mp_obj_malloc + defaults (make_new); MP_STATE_PORT(sercom_table[id]) = self
        _u[s + _F_BAUD] = _DEFAULT_BAUD
        _u[s + _F_BITS] = 8
        _u[s + _F_PARITY] = 0
        _u[s + _F_STOP] = 0
        _u[s + _F_TIMEOUT] = 1
        _u[s + _F_TCHAR] = 1
        _u[s + _F_RXLEN] = _DEFAULT_BUF
        _u[s + _F_TXLEN] = _DEFAULT_BUF
        _u[s + _F_TX] = _B.UART_TX
        _u[s + _F_RX] = _B.UART_RX
        _u[s + _F_RTS] = _NO_PIN
        _u[s + _F_CTS] = _NO_PIN
        _u[s + _F_NEW] = 1
        _u_rx[id] = None
        _u_tx[id] = None
        _u_obj[id] = self
        _u_kind[id] = 1
        if _ev[_E_MODEM_ID] == id:
            _ev[_E_MODEM_ID] = -1
        self._init(baudrate, bits, parity, stop, tx, rx, timeout, timeout_char, rxbuf,
                   txbuf, rts, cts, True)

    def init(self, baudrate=-1, bits=-1, parity=-1, stop=-1, *, tx=None, rx=None,
             timeout=-1, timeout_char=-1, rxbuf=-1, txbuf=-1, rts=None, cts=None):
        _tick()
        if not _B.UART_RTSCTS and (rts is not None or cts is not None):
            raise TypeError("unexpected keyword argument")
        self._init(baudrate, bits, parity, stop, tx, rx, timeout, timeout_char, rxbuf,
                   txbuf, rts, cts, True)

    def _init(self, baudrate, bits, parity, stop, tx, rx, timeout, timeout_char, rxbuf, txbuf,
              rts, cts, any_args):
        # mp_machine_uart_init_helper, in its order
        s = self._s
        sercom = s // _F_N
        if baudrate > 0:
            _u[s + _F_BAUD] = baudrate
        if bits > 0:
            _u[s + _F_BITS] = bits
            _u_rx[sercom] = None
            _u_tx[sercom] = None
        if parity != -1:
            _u[s + _F_PARITY] = 0 if parity is None else (1 if parity & 1 else 2)
        if stop > 0:
            _u[s + _F_STOP] = (stop - 1) & 1
        if tx is not None:
            _u[s + _F_TX] = _find_pin(tx)
        if rx is not None:
            _u[s + _F_RX] = _find_pin(rx)
        flow = 0
        rts_pad = cts_pad = -1
        if rts is not None:
            _u[s + _F_RTS] = _find_pin(rts)
            rts_pad = _sercom_config(_u[s + _F_RTS], sercom)[1]
            flow = _FLOW_RTS
        if cts is not None:
            _u[s + _F_CTS] = _find_pin(cts)
            cts_pad = _sercom_config(_u[s + _F_CTS], sercom)[1]
            flow |= _FLOW_CTS
        if flow == _FLOW_RTS:
            raise ValueError("cts missing for flow control")
        if timeout >= 0:
            _u[s + _F_TIMEOUT] = timeout
        if timeout_char >= 0:
            _u[s + _F_TCHAR] = timeout_char
        if rxbuf > 0:
            n = _MIN_BUF if rxbuf < _MIN_BUF else rxbuf
            if n > _MAX_BUF:
                raise ValueError("rxbuf too large")
            if n != _u[s + _F_RXLEN]:
                _u_rx[sercom] = None
                _u[s + _F_RXLEN] = n
        if txbuf > 0 and _B.UART_TXBUF:
            n = _MIN_BUF if txbuf < _MIN_BUF else txbuf
            if n > _MAX_BUF:
                raise ValueError("txbuf too large")
            if n != _u[s + _F_TXLEN]:
                _u_tx[sercom] = None
                _u[s + _F_TXLEN] = n
        elif txbuf > 0:
            raise TypeError("unexpected keyword argument 'txbuf'")
        wide = 2 if _u[s + _F_BITS] > 8 else 1
        if not (any_args or _u[s + _F_NEW]):
            return
        _u[s + _F_NEW] = 0
        t = _u[s + _F_TX]
        r = _u[s + _F_RX]
        if t == _NO_PIN or r == _NO_PIN or t // 4 != r // 4:
            raise ValueError("invalid or missing rx/tx")
        _sercom_config(r, sercom)
        tx_pad = _sercom_config(t, sercom)[1]
        min_tchar = 13000 // _u[s + _F_BAUD] + 1
        if _u[s + _F_TCHAR] < min_tchar:
            _u[s + _F_TCHAR] = min_tchar
        # ringbuf_alloc(rxbuf + 1), then (TXBUF) ringbuf_alloc(txbuf + 1): on the GC heap
        if _u_rx[sercom] is None:
            _u_rx[sercom] = bytearray(_u[s + _F_RXLEN] * wide + 1)
            _u[s + _F_RXGET] = _u[s + _F_RXPUT] = 0
        if _B.UART_TXBUF and _u_tx[sercom] is None:
            _u_tx[sercom] = bytearray(_u[s + _F_TXLEN] * wide + 1)
            _u[s + _F_TXGET] = _u[s + _F_TXPUT] = 0
        # machine_sercom_configure: TX on pad 0, or pad 2 (SAMD21); RTS pad 2 / CTS pad 3
        # are muxed only when on those pads (otherwise silently no FC on that line)
        if tx_pad != 0 and tx_pad != 2:
            raise ValueError("invalid UART pin")
        f = 0
        if flow & _FLOW_RTS and rts_pad == 2:
            f |= _FLOW_RTS
            _pin_mux[_u[s + _F_RTS]] = sercom
            _wire(_u[s + _F_RTS])
        if flow & _FLOW_CTS and cts_pad == 3:
            f |= _FLOW_CTS
            _pin_mux[_u[s + _F_CTS]] = sercom
        _u[s + _F_FLOW] = f
        _pin_mux[t] = sercom
        _pin_mux[r] = sercom
        char_bits = 1 + _u[s + _F_BITS] + (1 if _u[s + _F_PARITY] else 0) + 1 \
            + _u[s + _F_STOP]
        _u[s + _F_BYTE_US256] = char_bits * 256000000 // _u[s + _F_BAUD]
        now = time.ticks_us()
        _u[s + _F_TXLAST] = _u[s + _F_RXLAST] = now
        _u[s + _F_TXCARRY] = _u[s + _F_RXCARRY] = 0
        if t == _modem_tx and r == _modem_rx and _io is not None:
            _ev[_E_MODEM_ID] = sercom

    def deinit(self):
        _tick()
        sercom = self._s // _F_N
        if _u_obj[sercom] is self:
            if _ev[_E_MODEM_ID] == sercom:
                _ev[_E_MODEM_ID] = -1
            _u_kind[sercom] = 0

    # -- the line: TX ring -> pty at the baud rate, pty -> RX ring at most at the baud rate
    def _pump(self):
        s = self._s
        sercom = s // _F_N
        if _ev[_E_MODEM_ID] != sercom:
            # nothing on the other end: what is sent leaves at the baud rate, nothing arrives
            self._drain(s, sercom, False)
            return
        self._drain(s, sercom, True)
        self._receive(s, sercom)

    def _drain(self, s, sercom, wired):
        ring = _u_tx[sercom]
        if ring is None:
            return
        now = time.ticks_us()
        el = time.ticks_diff(now, _u[s + _F_TXLAST])
        _u[s + _F_TXLAST] = now
        if el > 1000000:
            el = 1000000
        if el < 0:
            el = 0
        q = el * 256 + _u[s + _F_TXCARRY]
        n = q // _u[s + _F_BYTE_US256]
        size = len(ring)
        avail = _ring_count(s, _F_TXGET, _F_TXPUT, size)
        if n >= avail:
            n = avail
            _u[s + _F_TXCARRY] = 0     # idle line: no credit saved up
        else:
            _u[s + _F_TXCARRY] = q - n * _u[s + _F_BYTE_US256]
        g = _u[s + _F_TXGET]
        while n > 0:
            k = 6
            while (1 << k) > n:
                k -= 1
            m = 1 << k
            for j in range(m):
                _stage[j] = ring[g]
                g += 1
                if g == size:
                    g = 0
            if wired:
                _io.write(_views[k])
            n -= m
        _u[s + _F_TXGET] = g

    def _receive(self, s, sercom):
        ring = _u_rx[sercom]
        now = time.ticks_us()
        el = time.ticks_diff(now, _u[s + _F_RXLAST])
        _u[s + _F_RXLAST] = now
        if el > 1000000:
            el = 1000000
        if el < 0:
            el = 0
        q = el * 256 + _u[s + _F_RXCARRY]
        allow = q // _u[s + _F_BYTE_US256]
        size = len(ring)
        free = size - 1 - _ring_count(s, _F_RXGET, _F_RXPUT, size)
        fc = _u[s + _F_FLOW] & _FLOW_RTS
        if fc and allow > free:
            # RTS: the SERCOM holds the modem off while the ring is full
            allow = free
        got_total = 0
        p = _u[s + _F_RXPUT]
        while allow > 0:
            k = 6
            while (1 << k) > allow:
                k -= 1
            got = _io.readinto(_views[k])
            if not got:
                break
            for j in range(got):
                if free > 0:
                    ring[p] = _stage[j]
                    p += 1
                    if p == size:
                        p = 0
                    free -= 1
                else:
                    _ev[_E_RX_LOST] += 1        # overrun: no FC and the ring is full
            got_total += got
            allow -= got
            if got < (1 << k):
                break
        _u[s + _F_RXPUT] = p
        if got_total:
            _u[s + _F_RXCARRY] = q - got_total * _u[s + _F_BYTE_US256] \
                if got_total * _u[s + _F_BYTE_US256] <= q else 0
        else:
            _u[s + _F_RXCARRY] = 0

    # -- the stream API
    def any(self):
        _tick()
        self._pump()
        s = self._s
        ring = _u_rx[s // _F_N]
        return _ring_count(s, _F_RXGET, _F_RXPUT, len(ring))

    def _getc(self, ring, s):
        g = _u[s + _F_RXGET]
        c = ring[g]
        g += 1
        if g == len(ring):
            g = 0
        _u[s + _F_RXGET] = g
        return c

    def readinto(self, buf, n=-1):
        # mp_machine_uart_read: the first byte within timeout, each next within timeout_char;
        # nothing at all -> None (EAGAIN)
        _tick()
        s = self._s
        ring = _u_rx[s // _F_N]
        size = len(buf) if n < 0 or n > len(buf) else n
        t = time.ticks_add(time.ticks_ms(), _u[s + _F_TIMEOUT])
        i = 0
        while i < size:
            self._pump()
            if _ring_count(s, _F_RXGET, _F_RXPUT, len(ring)) == 0:
                if time.ticks_diff(time.ticks_ms(), t) > 0:
                    return i if i > 0 else None
                time.sleep_us(100)
                continue
            while i < size and _ring_count(s, _F_RXGET, _F_RXPUT, len(ring)):
                buf[i] = self._getc(ring, s)
                i += 1
            t = time.ticks_add(time.ticks_ms(), _u[s + _F_TCHAR])
        return size

    def read(self, n=-1):
        _tick()
        if n < 0:
            n = self.any()
            if not n:
                return None
        buf = bytearray(n)
        got = self.readinto(buf, n)
        if got is None:
            return None
        return bytes(buf) if got == n else bytes(memoryview(buf)[0:got])

    def readline(self):
        _tick()
        out = bytearray()
        b = bytearray(1)
        while True:
            if not self.readinto(b, 1):
                break
            out.append(b[0])
            if b[0] == 10:
                break
        return bytes(out) if out else None

    def write(self, buf):
        # mp_machine_uart_write (TXBUF): bytes go into the TX ring while it has room; with the
        # ring full it waits until ticks_ms passes start + timeout, then returns what it took
        # (None for nothing: EAGAIN). At timeout=0: what fits, plus what drains before the
        # next millisecond tick. The count is computed from the line rate, not from how fast
        # this Python loop runs: cap = free space now + bytes the line sends before the
        # deadline (the ring is not empty all that time).
        _tick()
        if isinstance(buf, str):
            buf = buf.encode()
        s = self._s
        sercom = s // _F_N
        n = len(buf)
        if n and _ev[_E_MODEM_ID] == sercom and not _ev[_E_FIRST_BYTE]:
            _first_byte()
        ring = _u_tx[sercom]
        if ring is None:
            # no TX ring (MICROPY_HW_UART_TXBUF 0): each byte waits for DRE; modelled as the
            # line taking them
            return n
        size = len(ring)
        self._pump()
        start = _u[s + _F_TXLAST]
        free = size - 1 - _ring_count(s, _F_TXGET, _F_TXPUT, size)
        cap = n
        end = start
        if n > free:
            # the first ticks_ms() past start_ms + timeout: the next ms boundary after
            # timeout ms (ticks_us and ticks_ms share one clock here)
            end = time.ticks_add(start, (_u[s + _F_TIMEOUT] + 1) * 1000 - start % 1000)
            span = time.ticks_diff(end, start)
            if span > 1000000:
                span = 1000000
            cap = free + (span * 256 + _u[s + _F_TXCARRY]) // _u[s + _F_BYTE_US256]
            if cap > n:
                cap = n
        i = 0
        while True:
            p = _u[s + _F_TXPUT]
            while free > 0 and i < cap:
                ring[p] = buf[i]
                p += 1
                if p == size:
                    p = 0
                i += 1
                free -= 1
            _u[s + _F_TXPUT] = p
            if i >= cap:
                break
            time.sleep_us(50)
            self._pump()
            free = size - 1 - _ring_count(s, _F_TXGET, _F_TXPUT, size)
        if cap < n:
            # the port returns only at the deadline
            while time.ticks_diff(end, time.ticks_us()) > 0:
                time.sleep_us(50)
                self._pump()
        return i if i > 0 else None

    def flush(self):
        # waits for the TX ring and the shift register (txdone)
        _tick()
        t = time.ticks_ms()
        while not self.txdone():
            if time.ticks_diff(time.ticks_ms(), t) > 60000:
                raise OSError(_ETIMEDOUT)
            time.sleep_us(200)

    def txdone(self):
        _tick()
        self._pump()
        s = self._s
        ring = _u_tx[s // _F_N]
        return ring is None or _ring_count(s, _F_TXGET, _F_TXPUT, len(ring)) == 0

    def sendbreak(self):
        _tick()
        self.flush()


def _first_byte():
    # the first byte to the modem: what was done before it (see the header)
    _ev[_E_FIRST_BYTE] = 1
    _ev[_E_PMIC_AT_FIRST] = _ev[_E_PMIC_WRITES]
    s = _ev[_E_MODEM_ID] * _F_N
    if _u[s + _F_FLOW] == _FLOW_RTS | _FLOW_CTS:
        _ev[_E_FLOW] = 1
    elif _pin_low_output(_rts_pin):
        _ev[_E_FLOW] = 2
    _say("before first modem byte: pmic_written=", "1" if _ev[_E_PMIC_WRITES] else "0",
         " flow=", ("none", "rtscts", "rts_pin_low")[_ev[_E_FLOW]])
    if _ev[_E_PROBE]:
        gc.collect()
        _say("probe first_modem_byte alloc=", str(gc.mem_alloc()))


# ---- I2C ------------------------------------------------------------------------------------
def _i2c_pin(p, sercom, pad):
    # pin_af.c pin_config_for_i2c: the pin on this SERCOM, on the pad asked (SDA 0, SCL 1)
    i = _find_pin(p)
    if _sercom_config(i, sercom)[1] != pad:
        raise ValueError("invalid sda/scl pin")
    return i


class I2C:
    # machine_i2c.c + extmod/machine_i2c.c. Devices on the board's bus (SDA/SCL of pins.csv,
    # PA08/PA09): the BQ24195L PMIC (0x6B: registers, writes recorded) and the ATECC508A
    # (0x60: answers, reads give 0xff). A NACKed address is OSError(ENODEV).
    def __init__(self, id=_B.DEFAULT_I2C_ID, freq=_DEFAULT_I2C_FREQ, *, scl=None, sda=None,
                 timeout=_DEFAULT_I2C_TIMEOUT):
        _tick()
        if scl is None:
            scl = _B.I2C_SCL if _B.I2C_SCL != _NO_PIN else None
        if sda is None:
            sda = _B.I2C_SDA if _B.I2C_SDA != _NO_PIN else None
        if scl is None or sda is None:
            raise TypeError("'scl' argument required" if scl is None
                            else "'sda' argument required")
        if id < 0 or id >= _N_SERCOM:
            raise ValueError("I2C(%d) doesn't exist" % id)
        sda = _i2c_pin(sda, id, 0)
        scl = _i2c_pin(scl, id, 1)
        # mp_obj_malloc(machine_i2c_obj_t): 32 B on the board, this instance with one
        # attribute the same; pins and bus in the per-SERCOM table
        self._s = id * _F_N
        _u[self._s + _F_TX] = sda
        _u[self._s + _F_RX] = scl
        _pin_mux[sda] = id
        _pin_mux[scl] = id
        _u_obj[id] = self
        _u_kind[id] = 2

    def _on_board_bus(self):
        return _u[self._s + _F_TX] == _sda_bus and _u[self._s + _F_RX] == _scl_bus

    def _bus(self, addr):
        _tick()
        if self._on_board_bus() and (addr == _PMIC or addr == _CRYPTO):
            return addr
        raise OSError(_ENODEV)

    def scan(self):
        _tick()
        if self._on_board_bus():
            return [_CRYPTO, _PMIC]
        return []

    def _write_regs(self, addr, reg, buf, start):
        if addr != _PMIC:
            return
        for i in range(start, len(buf)):
            r = reg + i - start
            if r < _PMIC_RO:
                _pmic_reg[r] = buf[i]
            n = _ev[_E_PMIC_WRITES]
            if n < 32:
                _pmic_log[2 * n] = r
                _pmic_log[2 * n + 1] = buf[i]
            _ev[_E_PMIC_WRITES] = n + 1
        _pmic_ptr[0] = reg + len(buf) - start

    def _read_regs(self, addr, reg, buf, n):
        for i in range(n):
            r = reg + i
            buf[i] = _pmic_reg[r] if addr == _PMIC and r < _PMIC_NREG else 0xFF
        if addr == _PMIC:
            _pmic_ptr[0] = reg + n

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._bus(addr)
        self._write_regs(addr, memaddr, buf, 0)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        self._bus(addr)
        self._read_regs(addr, memaddr, buf, len(buf))

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        self._bus(addr)
        b = bytearray(nbytes)
        self._read_regs(addr, memaddr, b, nbytes)
        return bytes(b)

    def writeto(self, addr, buf, stop=True):
        self._bus(addr)
        if len(buf):
            self._write_regs(addr, buf[0], buf, 1)
        return len(buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._bus(addr)
        self._read_regs(addr, _pmic_ptr[0], buf, len(buf))

    def readfrom(self, addr, nbytes, stop=True):
        self._bus(addr)
        b = bytearray(nbytes)
        self._read_regs(addr, _pmic_ptr[0], b, nbytes)
        return bytes(b)


def pmic_writes():
    # [(register, value), ...] of the first 32 PMIC writes (tests, reports)
    return [(_pmic_log[2 * i], _pmic_log[2 * i + 1])
            for i in range(min(_ev[_E_PMIC_WRITES], 32))]


# ---- ADC ------------------------------------------------------------------------------------
class ADC:
    # machine_adc.c: ADC(pin, bits=12, *, average=16, vref=3). ADC_VBAT (PB09) reads the battery
    # through the MKR's divider (330k over 1M: V_pin = V_bat * 1000 / 1330) against 3.3 V: the
    # default vref index 3 is AREFA, which the board must drive for this to be meaningful (an
    # assumption of the model, noted in the harness's report). Other ADC pins read 0.
    def __init__(self, id, bits=_ADC_BITS, *, average=_ADC_AVG, vref=_ADC_VREF):
        _tick()
        pin = _find_pin(id)
        if _B.ADC[pin] == 0xFF:
            raise ValueError("ADC pin used")
        if not 8 <= bits <= 12:
            bits = _ADC_BITS
        if not 0 <= vref < 5:
            vref = _ADC_VREF
        # one attribute (pin | bits << 8 | vref << 12): 32 B here, 16 B on the board
        self._c = pin | bits << 8 | vref << 12

    def read_u16(self):
        _tick()
        c = self._c
        bits = (c >> 8) & 15
        vref_mv = (1000, 2230, 1650, 3300, 3300)[c >> 12]
        mv = 0
        if c & 255 == _vbat_pin:
            mv = _ev[_E_VBAT] * 1000 // 1330
        full = (1 << bits) - 1
        raw = mv * full // vref_mv
        if raw > full:
            raw = full
        return raw * (65536 >> bits)

    def deinit(self):
        _tick()


# ---- WDT ------------------------------------------------------------------------------------
def _wdt_period(ms):
    # set_timeout: clamp to 512..16384, then CONFIG.PER = log2i(ms) - 3: 2**floor(log2(ms))
    if ms < _WDT_MIN:
        ms = _WDT_MIN
    elif ms > _WDT_MAX:
        ms = _WDT_MAX
    p = 1
    while p * 2 <= ms:
        p *= 2
    return p


class WDT:
    # machine_wdt.c: WDT(id=0, timeout=5000) -> the one watchdog (a constant object: no heap);
    # it cannot be stopped once armed
    def __new__(cls, id=0, timeout=5000):
        _tick()
        w = _wdt[0]
        w.timeout_ms(timeout)
        return w

    def timeout_ms(self, ms):
        _ev[_E_WDT_PERIOD] = _wdt_period(ms)
        _ev[_E_WDT_FED] = time.ticks_ms()

    def feed(self):
        _tick()
        _ev[_E_WDT_FED] = time.ticks_ms()


_wdt = [object.__new__(WDT)]


# ---- module functions (modmachine.c) ----------------------------------------------------------
PWRON_RESET = 1
HARD_RESET = 0x10
WDT_RESET = 0x20
SOFT_RESET = 0x40
DEEPSLEEP_RESET = 0x80


def unique_id():
    # 16 bytes, a new bytes object each call (mp_obj_new_bytes)
    _tick()
    return bytes(_uid)


def reset():
    _tick()
    _die(_EXIT_RESET, "machine.reset()")


def soft_reset():
    _tick()
    _die(_EXIT_RESET, "machine.soft_reset()")


def bootloader():
    _tick()
    _die(_EXIT_RESET, "machine.bootloader()")


def reset_cause():
    _tick()
    return _reset_cause


def freq(hz=None):
    _tick()
    return 48000000 if hz is None else None


def idle():
    # MICROPY_EVENT_POLL_HOOK: __WFE(), woken within a SysTick (1 ms)
    _tick()
    m = _ev[_E_MODEM_ID]
    if m >= 0:
        _u_obj[m]._pump()
    time.sleep_ms(1)


def lightsleep(ms=None):
    _tick()
    time.sleep_ms(ms if ms else 0)


def disable_irq():
    return 0


def enable_irq(state=0):
    pass
