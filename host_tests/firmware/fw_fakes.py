# Test doubles for the firmware tests, written for both CPython (pytest) and MicroPython (the
# WASI runtime): a virtual clock, an in-memory file system with fault injection, and a fake
# UART that plays a SARA modem + SAFE2 SIM at the byte level (real AT lines, real APDUs; the
# SIM side is a small state model of the applet, with knobs for every bad path).


def raises(exc, fn, *args):
    # -> the exception; AssertionError if fn(*args) does not raise exc
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("%s not raised" % exc.__name__)  # noqa: UP031 (MicroPython: no f-strings)


def unhex(s):
    s = s.replace(" ", "")
    out = bytearray(len(s) // 2)
    for i in range(len(out)):
        out[i] = int(s[2 * i:2 * i + 2], 16)
    return bytes(out)


def tohex(b):
    return "".join("%02X" % x for x in b)  # noqa: UP031


class FakeClock:
    # virtual milliseconds: sleep_ms advances time instantly
    def __init__(self, now=0):
        self.now = now
        self.slept = 0

    def ticks_ms(self):
        return self.now & 0x3FFFFFFF

    def sleep_ms(self, ms):
        self.now += ms
        self.slept += ms


class _RamFile:
    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        self.w = "w" in mode
        self.data = bytearray() if self.w else bytearray(fs.files[path])
        self.pos = 0

    def write(self, b):
        fs = self.fs
        if fs.fail_after is not None:
            if fs.fail_after <= 0:
                raise OSError(5)     # EIO
            k = len(b) if len(b) <= fs.fail_after else fs.fail_after
            self.data.extend(bytes(b[0:k]))
            fs.fail_after -= k
            self.fs.files[self.path] = bytes(self.data)   # partial data reaches "flash"
            return k
        self.data.extend(bytes(b))
        return len(b)

    def readinto(self, buf):
        n = len(buf)
        if n > len(self.data) - self.pos:
            n = len(self.data) - self.pos
        for i in range(n):
            buf[i] = self.data[self.pos + i]
        self.pos += n
        return n

    def read(self, n=-1):
        if n < 0:
            n = len(self.data) - self.pos
        r = bytes(self.data[self.pos:self.pos + n])
        self.pos += len(r)
        return r

    def close(self):
        if self.w:
            self.fs.files[self.path] = bytes(self.data)
            self.w = False


class RamFs:
    # fs.OsFs-like, in memory; fail_after = bytes that may still be written before EIO;
    # fail_rename = rename calls that still succeed before EIO (None = never fail)
    def __init__(self):
        self.files = {}
        self.fail_after = None
        self.fail_rename = None

    def open(self, path, mode):
        if "w" not in mode and path not in self.files:
            raise OSError(2)
        if "w" in mode:
            self.files[path] = b""
        return _RamFile(self, path, mode)

    def rename(self, a, b):
        if self.fail_rename is not None:
            if self.fail_rename <= 0:
                raise OSError(5)
            self.fail_rename -= 1
        if a not in self.files:
            raise OSError(2)
        self.files[b] = self.files.pop(a)

    def remove(self, path):
        if path not in self.files:
            raise OSError(2)
        del self.files[path]

    def exists(self, path):
        return path in self.files

    def mkdir(self, path):
        pass


# --- SIM ---------------------------------------------------------------------------------
SAFE2_AID = unhex("F0706F6467736166653201 01")
REFERENCE_BODY = (b'{"configuration":{"version":"2021-05-31","config":'
                  b'[{"action":"iot:Alarm","effect":"On"}]}}')


class FakeSim:
    # SAFE2 applet state model (SAFE2-PROTOCOL.md "APDUs") behind AT+CSIM, with knobs.
    def __init__(self, clock, body=REFERENCE_BODY, done_after_ms=0, state=0x0007, result=0,
                 channels=3, applet=True, stale=False, never_done=False):
        self.clock = clock
        self.body = body
        self.done_after_ms = done_after_ms
        self.final_state = state
        self.result = result
        self.free = list(range(1, channels + 1))
        self.open = []
        self.applet = applet
        self.selected = {}
        self.device_id = None
        self.req_t0 = None
        self.stale = stale                 # a finished 0007 from an earlier run is waiting
        self.never_done = never_done
        self.pending = b""                 # data waiting for GET RESPONSE
        self.faults = {}                   # INS -> list of SWs to answer first (consumed)
        self.proactive = False             # answer 91 10 instead of 90 00
        self.wrong_le_status = False       # answer CC 02 with 6C 04 (re-send with Le)
        self.telemetry = []                # data of every DA 02 C1 answered 9000
        self.telemetry_sw = None           # answer DA 02 C1 with this SW (bytes) instead
        self.log = []

    def _ok(self):
        return b"\x91\x10" if self.proactive else b"\x90\x00"

    def _ch(self, cla):
        if cla & 0x40:
            return (cla & 0x0F) + 4
        return cla & 0x03

    def transmit(self, apdu):
        self.log.append(bytes(apdu))
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        f = self.faults.get(ins)
        if f:
            return f.pop(0)
        if ins == 0xC0:
            n = apdu[4] or 256
            if not self.pending:
                return b"\x69\x85"
            d = self.pending[0:n]
            rest = self.pending[n:]
            self.pending = b""
            if rest:
                self.pending = rest
                return d + bytes([0x61, len(rest) & 0xFF])
            return d + self._ok()
        if ins == 0x70:
            if p1 == 0x00:
                if not self.free:
                    return b"\x68\x81"
                n = self.free.pop(0)
                self.open.append(n)
                return bytes([n]) + self._ok()
            if p2 in self.open:
                self.open.remove(p2)
                self.free.append(p2)
                self.free.sort()
                self.selected.pop(p2, None)
                return self._ok()
            return b"\x68\x81"
        ch = self._ch(cla)
        if ch != 0 and ch not in self.open:
            return b"\x68\x81"
        if ins == 0xA4:
            if not self.applet or bytes(apdu[5:5 + apdu[4]]) != SAFE2_AID:
                return b"\x6A\x82"
            self.selected[ch] = True
            return self._ok()
        if not self.selected.get(ch):
            return b"\x69\x85"
        if ins == 0xDA and p2 == 0xC0:
            self.device_id = bytes(apdu[5:5 + apdu[4]])
            return self._ok()
        if ins == 0xDA and p2 == 0xC1:
            if self.telemetry_sw is not None:
                return self.telemetry_sw
            self.telemetry.append(bytes(apdu[5:5 + apdu[4]]))
            return self._ok()
        if ins == 0xCA and p1 == 0x00:
            self.req_t0 = self.clock.now
            self.stale = False
            return self._ok()
        if ins == 0xCC:
            if self.wrong_le_status and len(apdu) == 5 and apdu[4] == 0:
                return b"\x6C\x04"
            st, rr = self._status()
            data = bytes([st >> 8, st & 0xFF, rr >> 8, rr & 0xFF])
            if len(apdu) == 5 and apdu[4] == 4:
                return data + self._ok()
            self.pending = data
            return b"\x61\x04"
        if ins == 0xCA and p1 == 0x01:
            st, rr = self._status()
            if st != 0x0007:
                return b"\x69\x85"
            self.pending = self.body
            return bytes([0x61, len(self.body) & 0xFF])
        return b"\x6D\x00"

    def _status(self):
        if self.stale:
            return 0x0007, 0
        if self.req_t0 is None:
            return 0x0000, 0
        if self.never_done or self.clock.now - self.req_t0 < self.done_after_ms:
            return 0x0001, 0
        return self.final_state, self.result


class ScriptSim:
    # a card that answers each APDU with the next scripted response (bytes incl. SW1 SW2);
    # log: the APDUs received, as hex
    def __init__(self, *answers):
        self.answers = list(answers)
        self.log = []

    def transmit(self, cmd):
        self.log.append(tohex(cmd))
        if not self.answers:
            raise AssertionError("unexpected APDU " + tohex(cmd))
        return self.answers.pop(0)


# --- modem ---------------------------------------------------------------------------------
class FakeModem:
    # A UART (write / any / readinto) with a SARA-like AT interpreter in front of FakeSim.
    def __init__(self, clock, sim, echo=False, creg=1, cgreg=1, chunk=0, cereg=None):
        self.clock = clock
        self.sim = sim
        self.echo = echo
        self.creg = creg
        self.cgreg = cgreg
        # None: no LTE (AT+CEREG? answers ERROR, as a SARA-U201); an int: the <stat> answered;
        # a list: the <stat> of each AT+CEREG? in turn, the last one repeated
        self.cereg = cereg
        self.chunk = chunk                # deliver at most this many bytes per read (0 = all)
        self.silent = False
        self.garbage_before = b""         # bytes sent before the next reply
        self.urc_in_csim = False          # a +CREG URC before every +CSIM line
        self.cpin_errors = []             # CME numbers answered to AT+CPIN? first
        self.csim_errors = []             # replies (bytes) answered to AT+CSIM first
        self.csim_garble = []             # AT+CSIM commands (substrings) answered garbled
        self.k0_errors = []               # replies (bytes) answered to AT&K0 first
        self.cpin_bare_ok = 0             # AT+CPIN? answered with a bare OK this many times
        self.hold_replies = 0             # replies held back until the next command's
        self.silence_at = None            # substring of the command that silences the modem
        self.silent_cmds = 0              # ... for this many commands (from that one on)
        self._held = b""
        self.csim_refuses_manage_channel = False   # AT+CSIM with INS 70: +CME ERROR: 3
        self.ccho_prefix = True           # AT+CCHO answers "+CCHO: <n>" (False: bare "<n>")
        self.sessions = {}                # AT+CCHO session id -> logical channel
        self.late_at = None               # substring of a command whose reply comes late
        self.late_ms = 0                  # ... this long after the command (fake time)
        self._late_now = False
        self._late = []                   # [(due ms, bytes)]
        self.reset_count = 0
        self.cmee = True                  # errors as +CME ERROR (False: plain ERROR, CMEE=0)
        self.reboot_after = None          # substring of a command after whose reply it reboots
        self.reboots = 0
        self.sent = []                    # every command line received (bytes, no CR)
        self._in = bytearray()
        self._out = bytearray()

    # UART side
    def write(self, b):
        self._in.extend(bytes(b))
        while True:
            i = -1
            for k in range(len(self._in)):
                if self._in[k] == 13:
                    i = k
                    break
            if i < 0:
                break
            line = bytes(self._in[0:i])
            self._in = self._in[i + 1:]
            self._command(line)
        return len(b)

    def any(self):
        while self._late and self.clock.now >= self._late[0][0]:
            self._out.extend(self._late.pop(0)[1])
        n = len(self._out)
        if self.chunk and n > self.chunk:
            return self.chunk
        return n

    def readinto(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        n = min(n, len(self._out))
        for i in range(n):
            buf[i] = self._out[i]
        self._out = self._out[n:]
        return n

    def reboot(self):
        # a SARA that reset by itself: AT defaults (echo on, AT+CMEE=0), the SIM reset (its
        # logical channels and AT+CCHO sessions gone), SIM busy at the first AT+CPIN?
        self.reboots += 1
        self.echo = True
        self.cmee = False
        self.sessions = {}
        self.sim.free = list(range(1, len(self.sim.free) + len(self.sim.open) + 1))
        self.sim.open = []
        self.sim.selected = {}
        self.cpin_errors = [14]

    def _reply(self, s):
        if not self.cmee and s.find(b"+CME ERROR:") >= 0:
            s = b"\r\nERROR\r\n"
        if self.garbage_before:
            self._out.extend(self.garbage_before)
            self.garbage_before = b""
        if self._late_now or self._late:
            # a modem answers in order: what follows a late reply comes after it
            due = self.clock.now + self.late_ms if self._late_now else self._late[-1][0]
            self._late.append((due, s))
            return
        if self.hold_replies:
            # a late reply: it comes out in front of the next command's
            self.hold_replies -= 1
            self._held += s
            return
        if self._held:
            self._out.extend(self._held)
            self._held = b""
        self._out.extend(s)

    def _command(self, line):
        self.sent.append(line)
        self._answer(line)
        if self.reboot_after is not None and line.find(self.reboot_after) >= 0:
            self.reboot_after = None
            self.reboot()

    def _answer(self, line):
        self._late_now = self.late_at is not None and line.find(self.late_at) >= 0
        if self._late_now:
            self.late_at = None
        if self.silence_at is not None and line.find(self.silence_at) >= 0:
            self.silence_at = None
            self.silent = True
        if self.silent:
            if self.silent_cmds:
                self.silent_cmds -= 1
                if not self.silent_cmds:
                    self.silent = False
            return
        if self.echo:
            self._out.extend(line + b"\r")
        if line == b"AT":
            return self._reply(b"\r\nOK\r\n")
        if line == b"ATE0":
            self.echo = False
            return self._reply(b"\r\nOK\r\n")
        if line == b"ATE1":
            self.echo = True
            return self._reply(b"\r\nOK\r\n")
        if line == b"AT&K0" and self.k0_errors:
            return self._reply(self.k0_errors.pop(0))
        if line == b"AT+CMEE=1":
            self.cmee = True
            return self._reply(b"\r\nOK\r\n")
        if line == b"AT&K0":
            return self._reply(b"\r\nOK\r\n")
        if line == b"AT+CPIN?":
            if self.cpin_bare_ok:
                self.cpin_bare_ok -= 1
                return self._reply(b"\r\nOK\r\n")
            if self.cpin_errors:
                return self._reply(b"\r\n+CME ERROR: %d\r\n" % self.cpin_errors.pop(0))
            return self._reply(b"\r\n+CPIN: READY\r\n\r\nOK\r\n")
        if line == b"AT+CREG?":
            return self._reply(b"\r\n+CREG: 0,%d\r\n\r\nOK\r\n" % self.creg)
        if line == b"AT+CGREG?":
            return self._reply(b"\r\n+CGREG: 0,%d\r\n\r\nOK\r\n" % self.cgreg)
        if line == b"AT+CEREG?":
            st = self.cereg
            if st is None:
                return self._reply(b"\r\nERROR\r\n")
            if isinstance(st, list):
                st = st.pop(0) if len(st) > 1 else st[0]
            return self._reply(b"\r\n+CEREG: 0,%d\r\n\r\nOK\r\n" % st)
        if line == b"AT+CCID":
            return self._reply(b"\r\n+CCID: 8944502509186389635\r\n\r\nOK\r\n")
        if line == b"AT+CFUN=16":
            self.reset_count += 1
            self.sim.free = list(range(1, 4))
            self.sim.open = []
            self.sim.selected = {}
            return self._reply(b"\r\nOK\r\n")
        if line.startswith(b"AT+CCHO=\""):
            return self._ccho(line[9:-1])
        if line.startswith(b"AT+CCHC="):
            ch = self.sessions.pop(int(line[8:]), None)
            if ch is None:
                return self._reply(b"\r\n+CME ERROR: 21\r\n")
            self.sim.transmit(bytes([0, 0x70, 0x80, ch, 0]))
            return self._reply(b"\r\nOK\r\n")
        if line.startswith(b"AT+CGLA="):
            sid, _, rest = line[8:].partition(b",")
            ch = self.sessions.get(int(sid))
            if ch is None:
                return self._reply(b"\r\n+CME ERROR: 21\r\n")
            return self._csim(b"AT+CGLA=" + rest, ch, b"+CGLA")
        if line.startswith(b"AT+CSIM="):
            if self.csim_refuses_manage_channel and line[14:16] == b"70":
                return self._reply(b"\r\n+CME ERROR: 3\r\n")
            if self.csim_errors:
                return self._reply(self.csim_errors.pop(0))
            if self.csim_garble and line.find(self.csim_garble[0]) >= 0:
                # the card answered; the line back is garbled (non-hex characters)
                self.csim_garble.pop(0)
                self._csim(line)
                out = self._out
                for i in range(len(out) - 12, len(out)):
                    if 48 <= out[i] <= 57 or 65 <= out[i] <= 70:
                        out[i] = 90    # 'Z'
                        break
                return
            return self._csim(line)
        return self._reply(b"\r\nERROR\r\n")

    def _csim(self, line, channel=None, name=b"+CSIM"):
        # AT+CSIM (or AT+CGLA on a session's channel: the modem puts the channel in CLA)
        body = line[8:]
        comma = body.find(b",")
        n = int(body[0:comma])
        hexs = body[comma + 2:-1]
        if len(hexs) != n or body[comma + 1] != 34 or body[-1] != 34:
            return self._reply(b"\r\nERROR\r\n")
        apdu = bytearray(unhex(hexs.decode()))
        if channel is not None:
            apdu[0] = (apdu[0] & 0xFC) | channel
        rsp = self.sim.transmit(bytes(apdu))
        h = tohex(rsp).encode()
        out = b""
        if self.urc_in_csim:
            out += b"\r\n+CREG: 1\r\n"
        out += b'\r\n' + name + b': %d,"' % len(h) + h + b'"\r\n\r\nOK\r\n'
        return self._reply(out)

    def _ccho(self, aid_hex):
        # TS 27.007 8.45: MANAGE CHANNEL open + SELECT by AID, done by the modem
        rsp = self.sim.transmit(bytes([0, 0x70, 0, 0, 1]))
        if rsp[-2:] != b"\x90\x00":
            return self._reply(b"\r\n+CME ERROR: 20\r\n")
        ch = rsp[0]
        aid = unhex(aid_hex.decode())
        rsp = self.sim.transmit(bytes([ch, 0xA4, 4, 0x0C, len(aid)]) + aid)
        if rsp[-2:] != b"\x90\x00":
            self.sim.transmit(bytes([0, 0x70, 0x80, ch, 0]))
            return self._reply(b"\r\n+CME ERROR: 100\r\n")
        sid = 40 + ch
        self.sessions[sid] = ch
        pre = b"+CCHO: " if self.ccho_prefix else b""
        return self._reply(b"\r\n" + pre + b"%d\r\n\r\nOK\r\n" % sid)


def make_rig(body=REFERENCE_BODY, **sim_kw):
    # clock, sim, modem, fs for one device
    clock = FakeClock(1000)
    sim = FakeSim(clock, body, **sim_kw)
    modem = FakeModem(clock, sim)
    fs = RamFs()
    return clock, sim, modem, fs


class FakePin:
    def __init__(self):
        self.v = None
        self.history = []

    def value(self, v=None):
        if v is None:
            return self.v
        self.v = v
        self.history.append(v)


def rng(n):
    return bytes(range(n))
