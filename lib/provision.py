# provision: the zero-touch provisioning run, tying modem, channel, SAFE2 client, config and
# apply together (SAFE2-PROTOCOL.md), with a result code per outcome.
#
# States (each change logged "old -> new"):
#   MODEM_START -> CLOSE_STALE -> OPEN_CHANNEL -> SELECT -> SET_DEVICE_ID -> START_REQUEST
#   -> WAIT_STATUS -> READ_CONFIG -> APPLY -> CLOSE_CHANNEL -> DONE | FAILED
# The channel is closed on every exit path once opened. The body is applied straight from the
# APDU response buffer, before the close overwrites it (no second 255-byte buffer on the heap;
# the channel stays open for the few ms of parse and apply). Transient failures (silent modem,
# SIM busy, APDU errors, no free channel -> modem reset) restart the attempt after a backoff
# with jitter, at most `attempts` times; the rest fail at once. WAIT_STATUS polls until the SIM
# is done or poll_deadline_ms has passed since START_REQUEST: a first wait (poll_first_ms),
# then every poll_ms while less than poll_fast_ms has passed since START_REQUEST (a request
# that succeeds at once is done by then), then waits growing x3/2 up to poll_max_ms (the SIM
# is retrying with its own backoff of 2 s, 4 s, ...: fast polls would only load the SIM link).
# Numbers behind the defaults: docs/firmware.md "Status poll schedule".
# Reports (issue 17; an Applier made with reports=True, lib/apply.py): the pending report goes
# as telemetry (DA 02 C1) right before CA 00, in the same SAFE2 session as the configuration
# request (in place of Options.telemetry). A C1 the applet refuses (any SW but 9000) is logged and the run
# goes on: a report never blocks provisioning. The pending report is removed once the request
# after it got an answer from the service (status 0007, 0003, or 000F with an HTTP status as
# result: ASSUMED, the applet posts the telemetry before its GET, docs/firmware.md), else it is
# sent again next run. The run's own outcome is then stored as the next report: applied,
# rejected (40-42), or unchanged when no other report is pending (the newest state wins; an
# "unchanged" never hides a pending "confirmed" or "rolled_back").
# reprovision_delay_ms(): the application loop's schedule (lib/ztpmain.py).

from micropython import const

import apdu as _apdu
import apply as _apply
import at as _at
import channel as _channel
import config as _config
import modem as _modem
import safe2 as _safe2

# result codes (exit codes of `ztp device`)
OK = const(0)                 # new configuration applied
UNCHANGED = const(1)          # same body as the one in force
E_MODEM = const(10)           # modem silent or not answering sensibly
E_SIM = const(11)             # SIM missing / failed
E_NOT_REGISTERED = const(12)
E_NO_CHANNEL = const(20)      # no free logical channel even after a modem reset
E_APPLET_MISSING = const(21)  # SELECT: 6A82
E_APDU = const(22)            # unexpected status word / malformed +CSIM
E_REQUEST_FAILED = const(30)  # status 000F, or a non-zero result code
E_NO_CONFIG = const(31)       # status 0003: done, no configuration for this device
E_DEADLINE = const(32)        # the SIM did not finish before the poll deadline
E_BODY_TOO_LONG = const(40)
E_CONFIG_INVALID = const(41)
E_APPLY = const(42)

_RESULT_NAMES = ((OK, "OK"), (UNCHANGED, "UNCHANGED"), (E_MODEM, "E_MODEM"), (E_SIM, "E_SIM"),
                 (E_NOT_REGISTERED, "E_NOT_REGISTERED"), (E_NO_CHANNEL, "E_NO_CHANNEL"),
                 (E_APPLET_MISSING, "E_APPLET_MISSING"), (E_APDU, "E_APDU"),
                 (E_REQUEST_FAILED, "E_REQUEST_FAILED"), (E_NO_CONFIG, "E_NO_CONFIG"),
                 (E_DEADLINE, "E_DEADLINE"), (E_BODY_TOO_LONG, "E_BODY_TOO_LONG"),
                 (E_CONFIG_INVALID, "E_CONFIG_INVALID"), (E_APPLY, "E_APPLY"))


def result_name(code):
    # "E_MODEM" for 10, ... (a constant tuple: in flash, where a dict would be on the heap)
    for c, name in _RESULT_NAMES:
        if c == code:
            return name
    return str(code)


# RRRR of a 000F status carrying the gateway's HTTP status: 404 = no configuration for this
# device (docs/sim.md, docs/INTERFACES.md)
_RESULT_HTTP_NOT_FOUND = const(0x0194)
_SW_NO_CHANNEL = const(0x6881)  # logical channel not supported / not open (ISO 7816-4 5.1.3)
_LATE_REPLY_MS = const(300)   # how long a late reply is waited for after a timeout
_MAX_PERIOD_S = const(604800)  # 7 days: period + jitter in ms stays a small int (< 2**30)

_STATE_NAMES = ("IDLE", "MODEM_START", "CLOSE_STALE", "OPEN_CHANNEL", "SELECT",
                "SET_DEVICE_ID", "START_REQUEST", "WAIT_STATUS", "READ_CONFIG",
                "CLOSE_CHANNEL", "APPLY", "DONE", "FAILED")
_MODEM_START = const(1)
_CLOSE_STALE = const(2)
_OPEN_CHANNEL = const(3)
_SELECT = const(4)
_SET_DEVICE_ID = const(5)
_START_REQUEST = const(6)
_WAIT_STATUS = const(7)
_READ_CONFIG = const(8)
_CLOSE_CHANNEL = const(9)
_APPLY = const(10)
_DONE = const(11)
_FAILED = const(12)


class Failed(Exception):
    # a provisioning outcome other than success: self.code (result code), retryable or not
    def __init__(self, code, msg, retry=False):
        super().__init__(msg)
        self.code = code
        self.retry = retry


class Options:
    # The defaults are class attributes and an instance holds only what was given (keywords):
    # every instance attribute and default argument would sit on the heap for the whole run.
    attempts = 3
    backoff_ms = 2000
    backoff_max_ms = 30000
    poll_first_ms = 500
    poll_ms = 250
    poll_fast_ms = 15000
    poll_max_ms = 8000
    poll_deadline_ms = 120000
    reg_deadline_ms = 180000
    telemetry = None
    lte = False
    flow_control = True

    def __init__(self, **kw):
        for k in kw:
            if not hasattr(Options, k):
                raise TypeError("unknown option %s" % k)
            setattr(self, k, kw[k])


def hexstr(b):
    return "".join("%02x" % x for x in b)


def reprovision_delay_ms(period_s, jitter_s, rng=None):
    # the wait before the next provisioning while the application runs: period_s +- jitter_s
    # seconds, uniform in whole seconds (rng(3) -> 3 random bytes; None = no jitter), so that
    # devices started together (a power cut) do not all come back at the same second.
    # -1 = off (period_s <= 0). period_s is capped at 7 days, jitter_s at half the period.
    if period_s <= 0:
        return -1
    if period_s > _MAX_PERIOD_S:
        period_s = _MAX_PERIOD_S
    j = min(max(jitter_s, 0), period_s // 2)
    if j and rng is not None:
        b = rng(3)
        period_s += ((b[0] << 16) | (b[1] << 8) | b[2]) % (2 * j + 1) - j
    return period_s * 1000


class Provisioner:
    # link: modem.Link; fs: fs.OsFs-like; applier: apply.Applier; device_id: raw bytes;
    # rng(n) -> n random bytes (jitter); log(str) for one line per step; modem_power: optional
    # callable that power-cycles the modem (board) for "no free channel".
    def __init__(self, link, fs, applier, device_id, state_path, options=None, rng=None,
                 log=None, modem_power=None):
        self.link = link
        self.clock = link.clock
        self.applier = applier
        self.device_id = device_id
        self.opt = options or Options()
        self.rng = rng
        self.log = log or _at.nolog
        self.modem = _modem.Modem(link, log, self.opt.lte, self.opt.flow_control, modem_power)
        tel = self.opt.telemetry
        # the pending report this run sends (bytes), read now: with the other long-lived
        # objects, and the AT command buffer is sized for it at once
        rep = applier.pending_report()
        self._pending_report = None
        self.apdu = _apdu.Apdu(link, log, 3, max(len(device_id), len(_channel.SAFE2_AID),
                                                 len(tel) if tel else 0,
                                                 len(rep) if rep else 0))
        self.channels = _channel.Channels(self.apdu, fs, state_path, log)
        self.body = self.apdu.rsp       # the body read by READ CONFIG, in place
        self.body_len = 0
        self.state = 0
        self.result = -1
        self.detail = ""
        self.polls = 0
        self._modem_up = False
        self._silent = False          # the last attempt ended in a modem timeout
        # collect(): called at every step (the board passes gc.collect): garbage freed there
        # lets new objects fill the holes low in the heap, and the top stays free in one piece
        # for the few large ones (a littlefs file object is ~320 B)
        self.collect = None

    def _set_state(self, new):
        self.log("state %s -> %s" % (_STATE_NAMES[self.state], _STATE_NAMES[new]))
        self.state = new
        if self.collect is not None:
            self.collect()

    def run(self):
        # one provisioning; returns a result code (OK / UNCHANGED / E_*), sets self.detail
        self.log("provisioning DeviceID %s" % hexstr(self.device_id))
        rep = self.applier.pending_report()
        if rep is not None:
            # one stored since (a rollback at boot) may be longer: the buffer grows then
            self.apdu.reserve(len(rep))
        self._pending_report = rep
        attempts = self.opt.attempts
        if attempts < 1:
            attempts = 1        # at least one try (0 used to end in a KeyError)
        backoff = min(self.opt.backoff_ms, self.opt.backoff_max_ms)
        for attempt in range(attempts):
            try:
                code = self._attempt()
                self._set_state(_DONE)
                self.result = code
                self.detail = result_name(code)
                self.log("result %s" % self.detail)
                break
            except Failed as e:
                self.result = e.code
                self.detail = str(e)
                self.log("attempt %d/%d failed: %s %s"
                          % (attempt + 1, attempts, result_name(e.code), e))
                if not e.retry or attempt + 1 == attempts:
                    self._set_state(_FAILED)
                    self.log("result %s: %s" % (result_name(self.result), self.detail))
                    break
                wait = backoff + self._jitter(backoff // 2)
                self.log("retry in %d ms" % wait)
                self.clock.sleep_ms(wait)
                # a retry starts on a clean line: a reply that came late (after a timeout, or
                # behind a stray result code) would otherwise answer the next command, and
                # every later command would read the reply of the one before it
                self.link.drain()
                if self._modem_up and self.modem.rebooted():
                    # it rebooted by itself: ATE0, AT+CMEE=1, SIM and registration checks
                    # again (modem.start, as at power-up), then a new channel
                    self.log("modem back at its AT defaults (echo / plain ERROR): it "
                             "rebooted, starting it again")
                    self._modem_up = False
                backoff = min(backoff * 2, self.opt.backoff_max_ms)
        # the outcome becomes the pending report (a body turned down by _apply is reported
        # there, with its digest); the other results delivered nothing: the device holds what
        # it held
        self._pending_report = None
        code = self.result
        if code == OK:
            self.applier.store_report("applied", code)
        elif code == UNCHANGED:
            self.applier.store_report("unchanged", code, None, True)
        elif code == E_BODY_TOO_LONG:
            self.applier.store_report("rejected", code)
        return code

    def _jitter(self, span):
        if self.rng is None or span <= 0:
            return 0
        b = self.rng(2)
        return ((b[0] << 8) | b[1]) % (span + 1)

    def _attempt(self):
        try:
            if not self._modem_up:
                self._set_state(_MODEM_START)
                if self._silent and self.modem.power is not None:
                    # it stopped answering: the reset line (GSM_RESETN), not AT+CFUN=16
                    # (which needs a modem that answers)
                    self.modem.reset()
                self._silent = False
                self.modem.start(reg_deadline_ms=self.opt.reg_deadline_ms)
                self._modem_up = True
            self._set_state(_CLOSE_STALE)
            self.channels.close_stale()
            self._set_state(_OPEN_CHANNEL)
            try:
                ch = self.channels.open(_channel.SAFE2_AID)
            except _channel.NoFreeChannel as e:
                self.modem.reset()
                self._modem_up = False
                raise Failed(E_NO_CHANNEL, str(e), True)
            try:
                self._session(ch)
                code = self._apply()
            except _modem.ModemTimeout:
                # the reply to the command that timed out may still come: it would answer
                # the close below (and every later command the one before it)
                self.clock.sleep_ms(_LATE_REPLY_MS)
                self.link.drain()
                raise
            finally:
                self._set_state(_CLOSE_CHANNEL)
                try:
                    self.channels.close()
                except (_modem.ModemError, _apdu.ApduError) as e:
                    # the number stays remembered in flash: closed at the next boot
                    self.log("closing channel %d failed: %s" % (ch, e))
        except _modem.SimFatal as e:
            raise Failed(E_SIM, str(e))
        except _modem.SimBusy as e:
            raise Failed(E_SIM, str(e), True)
        except _modem.ModemTimeout as e:
            self._modem_up = False
            self._silent = True
            raise Failed(E_MODEM, str(e), True)
        except _modem.NotRegistered as e:
            raise Failed(E_NOT_REGISTERED, str(e), True)
        except _modem.ModemError as e:
            raise Failed(E_MODEM, str(e), True)
        except _channel.AppletMissing as e:
            raise Failed(E_APPLET_MISSING, str(e))
        except _safe2.BodyTooLong as e:
            raise Failed(E_BODY_TOO_LONG, str(e))
        except _apdu.ApduError as e:
            if e.sw == _SW_NO_CHANNEL:
                # our channel is gone (6881 on a channel we opened): the modem and the SIM
                # were reset; start the modem again before the next attempt
                self.log("logical channel gone: the modem rebooted")
                self._modem_up = False
            raise Failed(E_APDU, str(e), True)
        return code

    def _apply(self):
        self._set_state(_APPLY)
        # a body read but not applied is reported with its digest (the service can tell which
        # delivery was refused)
        try:
            cfg = _config.parse_config(self.body, self.body_len)
        except _config.ConfigError as e:
            self.applier.store_report("rejected", E_CONFIG_INVALID,
                                      _config.digest(self.body, self.body_len))
            raise Failed(E_CONFIG_INVALID, "configuration rejected: %s" % e)
        try:
            r = self.applier.apply(self.body, self.body_len, cfg)
        except _apply.ApplyError as e:
            self.applier.store_report("rejected", E_APPLY,
                                      _config.digest(self.body, self.body_len))
            raise Failed(E_APPLY, str(e))
        return UNCHANGED if r == _apply.UNCHANGED else OK

    def _session(self, ch):
        self._set_state(_SELECT)
        self.channels.select(_channel.SAFE2_AID)
        s2 = _safe2.Safe2(self.apdu, ch)
        self._set_state(_SET_DEVICE_ID)
        s2.set_device_id(self.device_id)
        # the pending report (else Options.telemetry) as telemetry. A refusing applet (a SW
        # other than 9000) never stops the run; a link fault (modem errors) still does, as it
        # would at CA 00.
        sent = self._pending_report
        data = sent or self.opt.telemetry
        if data:
            try:
                s2.send_telemetry(data)
            except _apdu.ApduError as e:
                self.log("%s not sent (%s)" % ("report" if sent else "telemetry", e))
                sent = None
        # always a fresh request: a result left from an earlier run must never be read as
        # this one's (the protocol has no request id)
        self._set_state(_START_REQUEST)
        s2.start_request()
        self._set_state(_WAIT_STATUS)
        clock = self.clock
        t0 = clock.ticks_ms()
        wait = self.opt.poll_first_ms
        deadline = self.opt.poll_deadline_ms
        self.polls = 0
        opt = self.opt
        for _ in range(10000):
            elapsed = _at.ticks_diff(clock.ticks_ms(), t0)
            if elapsed + wait > deadline:
                raise Failed(E_DEADLINE, "SIM not done within %d ms (%d polls)"
                             % (deadline, self.polls))
            clock.sleep_ms(wait)
            state, result = s2.poll_status()
            self.polls += 1
            if sent and (state == _safe2.STATUS_DATA or state == _safe2.STATUS_DONE or (
                    state == _safe2.STATUS_ERROR and 100 <= result <= 599)):
                # the service answered the request the report went before
                sent = None
                self._pending_report = None
                self.applier.drop_report()
                self.log("report delivered")
            if state == _safe2.STATUS_DATA:
                if result:
                    raise Failed(E_REQUEST_FAILED, "status 0007 with result code %04X" % result)
                break
            if state == _safe2.STATUS_DONE:
                raise Failed(E_NO_CONFIG, "SIM done without a configuration (result %04X)"
                             % result)
            if state == _safe2.STATUS_ERROR:
                if result == _RESULT_HTTP_NOT_FOUND:
                    raise Failed(E_NO_CONFIG, "no configuration for this device (the SIM got "
                                 "HTTP 404: status 000F result 0194)")
                raise Failed(E_REQUEST_FAILED, "SIM request failed: status 000F result %04X"
                             % result)
            if elapsed + wait < opt.poll_fast_ms:
                wait = opt.poll_ms
            elif wait < opt.poll_max_ms:
                wait = min(wait * 3 // 2, opt.poll_max_ms)
        else:
            # bounded loop (a stuck clock must not poll forever): out of polls = deadline
            raise Failed(E_DEADLINE, "SIM not done after %d polls" % self.polls)
        self.log("SIM done after %d polls" % self.polls)
        self._set_state(_READ_CONFIG)
        n = s2.read_config()
        self.body_len = n
        self.log("configuration body: %d bytes" % n)
