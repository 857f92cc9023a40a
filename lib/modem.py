# modem: drives the AT engine over a UART, and brings a SARA modem up (3GPP TS 27.007;
# DS = u-blox SARA-U2 AT commands manual).
#
# Link is the thin adapter between a UART-like object and at.AtEngine:
#   uart.any() -> int, uart.readinto(buf, n) -> int | None, uart.write(buf) -> int
#   clock.ticks_ms() -> int, clock.sleep_ms(ms)
# Modem.start() does: AT until answered, ATE0, AT+CMEE=1, (AT&K0 without RTS/CTS),
# AT+CPIN? (SIM busy, an OK without +CPIN: and an unreadable +CPIN: retried; SIM missing/failed
# and a PIN/PUK request fatal), registration poll (AT+CREG? and
# AT+CGREG?, AT+CEREG? only on LTE modems) with a bounded wait, AT+CCID for the logs.
# A modem that rebooted by itself (brown-out, watchdog, its own firmware) is back at its AT
# defaults: echo on and AT+CMEE=0, settings not stored with AT&W lost (&K3 again; DS ATE,
# +CMEE, &K defaults), logical channels closed (the SIM is reset with it; ISO 7816-4: after a
# reset only the basic channel is open). Modem.rebooted() says whether the engine saw such a
# sign (an echo, a plain ERROR) since start(); the caller then runs start() again, the same code
# as at power-up.

from micropython import const

import at

_POLL_MS = const(5)
_PACE_MS = const(20)        # MKRGSM: >= 20 ms after the modem's last output before a command
_WRITE_STALL_MS = const(2000)
_CME_SIM_NOT_INSERTED = const(10)   # TS 27.007 9.2.1
_CME_SIM_FAILURE = const(13)
_CME_SIM_BUSY = const(14)
_CME_SIM_WRONG = const(15)


class ModemError(Exception):
    # remote: the modem is silent, or answered something we cannot use
    pass


class ModemTimeout(ModemError):
    pass


class SimBusy(ModemError):
    pass


class SimFatal(ModemError):
    # SIM missing or failed (+CME ERROR: 10 / 13 / 15): retrying cannot help
    pass


class NotRegistered(ModemError):
    # no CS or PS registration within the deadline
    pass


class Link:
    # Pacing: a command goes out no sooner than _PACE_MS after the last byte the modem sent
    # (SARA-U2 may lose a command that follows its output too closely; Arduino's MKRGSM
    # waits 20 ms). Writes: the UART may take part of a command (samd at timeout=0 takes what
    # fits its TX ring, 256 B by default, and a long AT+CSIM is ~540 B): the rest is written
    # as the ring drains; no progress for _WRITE_STALL_MS (CTS held off) is a ModemTimeout.
    # max_line 300: the longest line the firmware reads is a +CSIM: answer of 128 data bytes
    # (apdu.Apdu reads longer answers in GET RESPONSE pieces of 128); max_cmd 64: the modem
    # commands, an APDU layer reserves what its APDUs need (at.AtEngine.reserve_cmd)
    def __init__(self, uart, clock, max_line=300, at_hook=None, max_cmd=64):
        self.uart = uart
        self.clock = clock
        self.engine = at.AtEngine(max_line, max_cmd)
        self._chunk = bytearray(64)
        self.at_hook = at_hook          # at_hook(direction, line): ">" sent, "<" URC/info
        self.urc_hook = None            # urc_hook(buf, n) for URCs (view valid during call)
        self._last_rx = None            # ticks_ms of the modem's last byte (None: not yet)

    def _read(self, k):
        # up to k bytes from the UART into the engine (k <= room and chunk size)
        got = self.uart.readinto(self._chunk, k)
        if got:
            self.engine.receive_data(self._chunk, got)
            self._last_rx = self.clock.ticks_ms()

    def _write(self, out):
        clock = self.clock
        if self._last_rx is not None:
            wait = _PACE_MS - at.ticks_diff(clock.ticks_ms(), self._last_rx)
            if wait > 0:
                clock.sleep_ms(wait)
        n = len(out)
        k = self.uart.write(out) or 0
        if k >= n:
            return
        t0 = clock.ticks_ms()
        while k < n:
            if at.ticks_diff(clock.ticks_ms(), t0) > _WRITE_STALL_MS:
                raise ModemTimeout("UART write stalled after %d of %d bytes" % (k, n))
            clock.sleep_ms(1)
            w = self.uart.write(out[k:n])
            if w:
                k += w
                t0 = clock.ticks_ms()

    def cmd(self, cmd, timeout_ms=1000, prefix=None, n=-1):
        # Sends one command, waits for its final result. Returns at.OK / at.ERROR /
        # at.CME_ERROR (engine.cme has the number). Raises ModemTimeout on silence.
        eng = self.engine
        clock = self.clock
        out = eng.command(cmd, clock.ticks_ms(), timeout_ms, prefix, n)
        if self.at_hook is not None:
            self.at_hook(">", out[0:len(out) - 1])
        self._write(out)
        chunk = self._chunk
        while True:
            ev = eng.next_event()
            if ev == at.REPLY:
                if self.at_hook is not None:
                    if eng.info_len:
                        self.at_hook("<", memoryview(eng.info)[0:eng.info_len])
                    if eng.result == at.CME_ERROR:
                        self.at_hook("<", ("+CME ERROR: %d" % eng.cme).encode())
                    else:
                        self.at_hook("<", _RESULT_TEXT[eng.result])
                return eng.result
            if ev == at.URC:
                if self.at_hook is not None:
                    self.at_hook("<", memoryview(eng.urc)[0:eng.urc_len])
                if self.urc_hook is not None:
                    self.urc_hook(eng.urc, eng.urc_len)
                continue
            if ev == at.TIMEOUT:
                if self.at_hook is not None:
                    self.at_hook("!", b"timeout")
                raise ModemTimeout("no answer to %s within %d ms"
                                   % (_cmd_name(cmd, n), timeout_ms))
            # NEED_DATA
            k = self.uart.any()
            if k:
                room = eng.room()
                if k > room:
                    k = room
                if k > len(chunk):
                    k = len(chunk)
                self._read(k)
                continue
            eng.handle_timer(clock.ticks_ms())
            if eng.pending():
                clock.sleep_ms(_POLL_MS)

    def ok(self, cmd, timeout_ms=1000, prefix=None, what=None):
        # cmd that must answer OK; SIM busy / fatal CME errors get their own types
        r = self.cmd(cmd, timeout_ms, prefix)
        if r == at.OK:
            return
        raise cme_exception(self.engine, what or _cmd_name(cmd, -1))

    def drain(self):
        # drop whatever the modem sent outside a command (URCs are still reported)
        eng = self.engine
        for _ in range(64):
            k = self.uart.any()
            if not k:
                break
            self._read(min(k, eng.room(), len(self._chunk)))
            while True:
                ev = eng.next_event()
                if ev == at.NEED_DATA:
                    break
                if ev == at.URC and self.urc_hook is not None:
                    self.urc_hook(eng.urc, eng.urc_len)


_RESULT_TEXT = (b"OK", b"ERROR", b"")


def _cmd_name(cmd, n):
    # the command up to '=' or '?', for messages (never the APDU payload)
    if n < 0:
        n = len(cmd)
    k = 0
    while k < n and k < 16 and cmd[k] != 61 and cmd[k] != 63:
        k += 1
    return bytes(cmd[0:k]).decode()


def printable(buf, s, e):
    # buf[s:e] as a str for logs and messages: bytes outside printable ASCII become '?'
    # (modem garbage must not turn into a UnicodeError). buf is a scratch buffer (the
    # engine's info line): it is changed in place, saving a copy.
    for i in range(s, e):
        if buf[i] < 32 or buf[i] > 126:
            buf[i] = 63
    return bytes(buf[s:e]).decode()


def _has(buf, s, e, pat):
    # does buf[s:e] contain pat? no slicing, no allocation
    for i in range(s, e - len(pat) + 1):
        if at._starts(buf, i, e, pat):
            return True
    return False


def cme_exception(eng, what):
    if eng.result == at.CME_ERROR:
        c = eng.cme
        if c == _CME_SIM_BUSY:
            return SimBusy("%s: +CME ERROR: 14 (SIM busy)" % what)
        if c == _CME_SIM_NOT_INSERTED or c == _CME_SIM_FAILURE or c == _CME_SIM_WRONG:
            return SimFatal("%s: +CME ERROR: %d (SIM %s)"
                            % (what, c, "not inserted" if c == 10 else "failure"))
        return ModemError("%s: +CME ERROR: %d" % (what, c))
    return ModemError("%s: ERROR" % what)


def parse_reg_stat(buf, n):
    # +CREG: <n>,<stat>[,...] / +CGREG: ... / +CEREG: ... (read form) -> stat, or -1.
    # A URC has only <stat>[,...]. Strict: digits between separators.
    i = 0
    while i < n and buf[i] != 58:   # ':'
        i += 1
    i += 1
    fields = [0, 0]
    count = 0
    cur = -1
    while i < n and count < 2:
        c = buf[i]
        if c == 32 and cur < 0:
            i += 1
            continue
        if 48 <= c <= 57:
            cur = (0 if cur < 0 else cur) * 10 + c - 48
            if cur > 99:
                return -1
        elif c == 44:    # ','
            if cur < 0:
                return -1
            fields[count] = cur
            count += 1
            cur = -1
        else:
            break
        i += 1
    if cur >= 0 and count < 2:
        fields[count] = cur
        count += 1
    if count == 0:
        return -1
    if count == 1:
        return fields[0]
    return fields[1]


class Modem:
    # profile: dict from board.PROFILES (keys: "lte", "flow_control")
    def __init__(self, link, log=None, lte=False, flow_control=True, power=None):
        self.link = link
        self.log = log or at.nolog
        self.lte = lte
        self.flow_control = flow_control
        self.power = power            # callable that power-cycles the modem (board), or None
        self.iccid = ""

    def start(self, answer_tries=20, reg_deadline_ms=180000, sim_tries=5):
        link = self.link
        for _ in range(answer_tries):
            try:
                link.cmd(b"AT", 1000)
                break
            except ModemTimeout:
                continue
        else:
            raise ModemTimeout("modem silent: no answer to AT after %d tries" % answer_tries)
        link.ok(b"ATE0")
        link.ok(b"AT+CMEE=1")
        if not self.flow_control:
            link.ok(b"AT&K0")
        self._sim_ready(sim_tries)
        self._registered(reg_deadline_ms)
        r = link.cmd(b"AT+CCID", 2000, b"+CCID:")
        eng = link.engine
        if r == at.OK and eng.info_len > 7:
            self.iccid = printable(eng.info, 6, eng.info_len).strip()
        self.log("modem ready, ICCID %s" % (self.iccid or "?"))
        # from here on echo is off and errors are numbered: an echo or a plain ERROR means
        # the modem lost this configuration (rebooted())
        link.engine.defaults_seen = False

    def rebooted(self):
        # did the modem show its AT defaults (echo, plain ERROR) since start()? Then it reset
        # and lost ATE0 / AT+CMEE=1 / AT&K0 and its logical channels: start() again
        return self.link.engine.defaults_seen

    def _sim_ready(self, tries):
        link = self.link
        clock = link.clock
        wait = 500
        for _ in range(tries):
            r = link.cmd(b"AT+CPIN?", 5000, b"+CPIN:")
            eng = link.engine
            if r == at.OK:
                info = eng.info
                n = eng.info_len
                i = 6                       # after "+CPIN:", spaces skipped
                while i < n and info[i] == 32:
                    i += 1
                if at._starts(info, i, n, b"READY"):
                    return
                if n:
                    # a code the SIM needs (SIM PIN, SIM PUK, PH-NET PIN, ...: every
                    # TS 27.007 code but READY names a PIN or PUK) cannot be given here;
                    # anything else is a line mangled on the way (UART noise): ask again
                    if _has(info, i, n, b"PIN") or _has(info, i, n, b"PUK"):
                        raise SimFatal("SIM not ready: %s" % printable(info, 0, n))
                    self.log("AT+CPIN?: unreadable answer %s, retry in %d ms"
                             % (printable(info, 0, n), wait))
                else:
                    # OK without +CPIN: most likely the late OK of an earlier command (the
                    # reply to this one still on its way): drain after the wait, ask again
                    self.log("AT+CPIN?: OK without +CPIN:, retry in %d ms" % wait)
            else:
                e = cme_exception(eng, "AT+CPIN?")
                if not isinstance(e, SimBusy):
                    raise e
                self.log("SIM busy, retry in %d ms" % wait)
            clock.sleep_ms(wait)
            link.drain()
            wait *= 2
        raise SimBusy("SIM not ready after %d tries" % tries)

    def _registered(self, deadline_ms):
        # Registered when the CS (+CREG) or PS (+CGREG, +CEREG on LTE) domain reports stat 1
        # (home) or 5 (roaming): data-only IoT SIMs may never reach CREG 1/5.
        link = self.link
        clock = link.clock
        t0 = clock.ticks_ms()
        wait = 250
        for _ in range(1000):
            for q, p in _REG_QUERIES if self.lte else _REG_QUERIES_2G3G:
                r = link.cmd(q, 2000, p)
                if r == at.OK:
                    st = parse_reg_stat(link.engine.info, link.engine.info_len)
                    if st == 1 or st == 5:
                        self.log("registered (%s stat %d)" % (bytes(p[1:-1]).decode(), st))
                        return
            if at.ticks_diff(clock.ticks_ms(), t0) + wait > deadline_ms:
                break
            clock.sleep_ms(wait)
            if wait < 4000:
                wait *= 2
        raise NotRegistered("not registered within %d ms" % deadline_ms)

    def reset(self):
        # no free logical channel: the modem keeps channels across MCU resets, so only a
        # modem reset frees them (SARA: AT+CFUN=16 resets the MT and the SIM, DS 5.3)
        self.log("resetting modem")
        if self.power is not None:
            self.power()
        else:
            try:
                self.link.cmd(b"AT+CFUN=16", 10000)
            except ModemTimeout:
                pass
        self.link.drain()


_REG_QUERIES_2G3G = ((b"AT+CREG?", b"+CREG:"), (b"AT+CGREG?", b"+CGREG:"))
_REG_QUERIES = ((b"AT+CREG?", b"+CREG:"), (b"AT+CGREG?", b"+CGREG:"), (b"AT+CEREG?", b"+CEREG:"))
