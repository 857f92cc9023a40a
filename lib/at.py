# at: AT command engine, sans-I/O (ITU-T V.250 line syntax, 3GPP TS 27.007 result codes).
#
# Theory of operation. The caller hands the engine one command at a time with command(); the
# engine returns the bytes to write (command + CR) and arms a deadline. Bytes read from the UART
# go in with receive_data() (any size, split anywhere); next_event() cuts them into lines and
# returns one event at a time:
#   REPLY    final result of the pending command: self.result is OK / ERROR / CME_ERROR
#            (self.cme = the +CME ERROR number); the information line that starts with the
#            command's prefix (e.g. b"+CSIM:") is in self.info[:self.info_len] (a view into a
#            shared buffer: the next command overwrites it)
#   URC      an unsolicited result code (+CREG:, +CGREG:, RING, +STK...) seen outside the reply:
#            self.urc[:self.urc_len] (shared buffer, overwritten by the next URC)
#   TIMEOUT  queued by handle_timer() once the command's deadline has passed
#   NEED_DATA nothing complete yet.
# Echo (ATE1) lines are recognised by content and skipped. An echo, and a plain ERROR as the
# result, set self.defaults_seen: signs of a modem at its AT defaults (echo on, AT+CMEE=0, as
# the SARA-U2 AT manual gives them for ATE and +CMEE), i.e. one that rebooted after the caller
# sent ATE0 and AT+CMEE=1 (the caller clears the flag once it has). Lines that are neither
# echo, nor the expected information line, nor a result code, nor a URC are garbage: counted
# and skipped. Lines longer than max_line are dropped up to the next LF.
# Time is a parameter (now_ms, wrapping like MicroPython's ticks_ms): no clock inside.
# Abbreviations: URC = unsolicited result code, CME = mobile termination error (TS 27.007 9.2).

from micropython import const

NEED_DATA = const(0)
REPLY = const(1)
URC = const(2)
TIMEOUT = const(3)

OK = const(0)
ERROR = const(1)
CME_ERROR = const(2)

_IDLE = const(0)
_WAIT_REPLY = const(1)

_LF = const(10)
_CR = const(13)
_TICKS_PERIOD = const(0x40000000)  # MicroPython ticks_ms wraps at 2**30 on most ports
_TICKS_HALF = const(0x20000000)


# local misuse of the engine (a command while another is pending, buffer overrun): a bug, not
# a modem fault, so nothing catches it; a builtin type (every class costs ~100 B of heap)
AtUsageError = RuntimeError


def ticks_diff(a, b):
    # a - b on the ticks circle, like time.ticks_diff (pure arithmetic, no clock)
    return ((a - b + _TICKS_HALF) & (_TICKS_PERIOD - 1)) - _TICKS_HALF


def ticks_add(a, delta):
    return (a + delta) & (_TICKS_PERIOD - 1)


def nolog(msg):
    # the log of every layer constructed with log=None (one shared no-op, no _log methods)
    pass


def _starts(buf, s, e, prefix):
    # does buf[s:e] start with prefix (bytes)? no slicing, no allocation
    n = len(prefix)
    if e - s < n:
        return False
    for i in range(n):
        if buf[s + i] != prefix[i]:
            return False
    return True


def _equals(buf, s, e, other, n):
    if e - s != n:
        return False
    for i in range(n):
        if buf[s + i] != other[i]:
            return False
    return True


# URC prefixes (TS 27.007 7.2 +CREG, 10.1.20 +CGREG, 10.1.22 +CEREG; V.250 RING; SARA +UUSTK*)
_URC_PREFIXES = (b"+CREG:", b"+CGREG:", b"+CEREG:", b"RING", b"+STK", b"+UUSTK", b"+CIEV:",
                 b"+UUPSDD", b"+UUSORD", b"+UUSOCL", b"+CMTI:", b"+CRING:", b"+UU", b"NO CARRIER")


class AtEngine:
    def __init__(self, max_line=600, max_cmd=560):
        self.max_line = max_line
        self._rx = bytearray(max_line + 2)   # input; a whole line + CR LF fits
        self._rxv = memoryview(self._rx)
        self._r = 0                          # read index
        self._n = 0                          # bytes buffered
        self._scan = 0                       # next index to look at for LF
        self._discard = False                # dropping an over-long line up to LF
        self.reserve_cmd(max_cmd)            # command + CR
        self._cmd_len = 0
        self._prefix = None
        self.info = bytearray(max_line)
        self.info_len = 0
        self.urc = bytearray(128)
        self.urc_len = 0
        self.result = OK
        self.cme = 0
        self.garbage = 0                     # lines skipped as garbage (for logs)
        self.defaults_seen = False           # an echo or a plain ERROR since cleared
        self._state = _IDLE
        self._deadline = 0
        self._timed_out = False

    # --- commands -------------------------------------------------------------------------
    def reserve_cmd(self, max_cmd):
        # room for commands of max_cmd bytes (grows, never shrinks). cmd_buffer: a caller may
        # build a long command in place there and pass it to command() (the APDU layer does:
        # no second buffer for AT+CSIM on the heap); re-read it after a reserve_cmd()
        if getattr(self, "_tx", None) is not None and len(self._tx) > max_cmd:
            return
        self._tx = bytearray(max_cmd + 1)
        self._txv = memoryview(self._tx)
        self.cmd_buffer = self._tx

    def command(self, cmd, now_ms, timeout_ms=1000, prefix=None, n=-1):
        # cmd: bytes/bytearray without CR (first n bytes if n >= 0); prefix: bytes of the
        # expected information line, e.g. b"+CSIM:". Returns a memoryview of command + CR to
        # write (shared buffer: valid until the next command()).
        if self._state != _IDLE:
            raise AtUsageError("command while another is pending")
        if n < 0:
            n = len(cmd)
        if n > len(self._tx) - 1:
            raise AtUsageError("command longer than %d bytes" % (len(self._tx) - 1))
        if cmd is not self._tx:
            self._tx[0:n] = cmd if n == len(cmd) else memoryview(cmd)[0:n]
        self._tx[n] = _CR
        self._cmd_len = n
        self._prefix = prefix
        self.info_len = 0
        self.result = OK
        self.cme = 0
        self._timed_out = False
        self._deadline = ticks_add(now_ms, timeout_ms)
        self._state = _WAIT_REPLY
        return self._txv[0:n + 1]

    def pending(self):
        return self._state == _WAIT_REPLY

    def timer(self):
        # the next deadline (ticks_ms) or None
        if self._state == _WAIT_REPLY:
            return self._deadline
        return None

    def handle_timer(self, now_ms):
        if self._state == _WAIT_REPLY and ticks_diff(now_ms, self._deadline) >= 0:
            self._state = _IDLE
            self._timed_out = True

    # --- input ----------------------------------------------------------------------------
    def room(self):
        # how many bytes receive_data() accepts now
        return len(self._rx) - (self._n - self._r)

    def receive_data(self, data, n=-1):
        # buffers data (first n bytes when n >= 0); raises AtUsageError if it does not fit
        if n < 0:
            n = len(data)
        if n == 0:
            return
        if n > self.room():
            raise AtUsageError("receive_data: %d bytes, room for %d" % (n, self.room()))
        if self._n + n > len(self._rx):
            # compact: move the unread bytes to the front
            k = self._n - self._r
            self._rx[0:k] = self._rxv[self._r:self._n]
            self._scan -= self._r
            self._r = 0
            self._n = k
        self._rx[self._n:self._n + n] = data if n == len(data) else memoryview(data)[0:n]
        self._n += n

    def next_event(self):
        if self._timed_out:
            self._timed_out = False
            return TIMEOUT
        rx = self._rx
        while True:
            i = self._scan
            end = self._n
            while i < end and rx[i] != _LF:
                i += 1
            if i >= end:
                self._scan = end
                if end - self._r >= len(rx):
                    # a full buffer without LF: drop it and the rest of that line
                    self._discard = True
                    self.garbage += 1
                    self._r = self._n = self._scan = 0
                return NEED_DATA
            s = self._r
            self._r = self._scan = i + 1
            if self._r == self._n:
                self._r = self._n = self._scan = 0
            if self._discard:
                self._discard = False
                continue
            e = i
            # strip CRs (and echo's trailing CR CR), spaces at both ends
            while e > s and (rx[e - 1] == _CR or rx[e - 1] == 32):
                e -= 1
            while s < e and (rx[s] == _CR or rx[s] == 32 or rx[s] == 0):
                s += 1
            if s == e:
                continue
            ev = self._line(rx, s, e)
            if ev != NEED_DATA:
                return ev

    def _line(self, rx, s, e):
        if self._state == _WAIT_REPLY:
            if _equals(rx, s, e, self._tx, self._cmd_len):
                self.defaults_seen = True
                return NEED_DATA                      # echo (ATE1)
            if _equals(rx, s, e, b"OK", 2):
                return self._final(OK, 0)
            if _equals(rx, s, e, b"ERROR", 5):
                self.defaults_seen = True             # not +CME ERROR: AT+CMEE=0
                return self._final(ERROR, 0)
            if _starts(rx, s, e, b"+CME ERROR:"):
                return self._final(CME_ERROR, parse_int(rx, s + 11, e))
            if _starts(rx, s, e, b"+CMS ERROR:"):
                return self._final(ERROR, 0)
            p = self._prefix
            if p is not None and self.info_len == 0 and _starts(rx, s, e, p):
                n = e - s
                if n <= len(self.info):
                    self.info[0:n] = self._rxv[s:e]
                    self.info_len = n
                    return NEED_DATA
        for u in _URC_PREFIXES:
            if _starts(rx, s, e, u):
                n = e - s
                if n > len(self.urc):
                    n = len(self.urc)
                self.urc[0:n] = self._rxv[s:s + n]
                self.urc_len = n
                return URC
        self.garbage += 1
        return NEED_DATA

    def _final(self, result, cme):
        self.result = result
        self.cme = cme
        self._state = _IDLE
        return REPLY


def parse_int(buf, s, e):
    # buf[s:e] as a decimal (spaces before it skipped); -1 when it is not one (a verbose
    # +CME ERROR text, a mangled line)
    while s < e and buf[s] == 32:
        s += 1
    if s == e or e - s > 6:
        return -1
    v = 0
    while s < e:
        c = buf[s]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + c - 48
        s += 1
    return v
