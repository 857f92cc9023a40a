# lib/modem.py alone: Modem.start() against the fake modem, garbage in answers (runs under
# pytest and MicroPython).
import at
import modem
from fw_fakes import FakeClock, FakeModem, FakeSim, raises


class OddModem(FakeModem):
    # answers chosen commands with fixed bytes
    def __init__(self, clock, answers):
        FakeModem.__init__(self, clock, FakeSim(clock))
        self.answers = answers

    def _command(self, line):
        if line in self.answers:
            self.sent.append(line)
            return self._reply(self.answers[line])
        return FakeModem._command(self, line)


def start(answers):
    clock = FakeClock(1000)
    m = OddModem(clock, answers)
    logs = []
    mo = modem.Modem(modem.Link(m, clock), logs.append)
    mo.start(answer_tries=2, reg_deadline_ms=2000, sim_tries=2)
    return mo, m, logs


def test_start_reads_iccid():
    mo, m, logs = start({})
    assert mo.iccid == "8944502509186389635"
    assert m.sent[0:4] == [b"AT", b"ATE0", b"AT+CMEE=1", b"AT+CPIN?"]


def test_rebooted_is_clear_after_start_and_set_by_the_modems_defaults():
    # start() itself sees the echo of AT and ATE0 (a modem at its defaults): cleared once the
    # start sequence has configured it; a reboot after that shows again
    mo, m, logs = start({})
    assert not mo.rebooted()
    m.reboot()
    mo.link.cmd(b"AT+CREG?", 1000, b"+CREG:")
    assert mo.rebooted()                        # echo
    mo.start(answer_tries=2, reg_deadline_ms=2000, sim_tries=2)
    assert not mo.rebooted()
    assert m.sent[-7:] == [b"AT", b"ATE0", b"AT+CMEE=1", b"AT+CPIN?", b"AT+CPIN?",  # SIM busy
                           b"AT+CREG?", b"AT+CCID"]
    m.reboot()
    m.echo = False
    assert mo.link.cmd(b'AT+CSIM=10,"01CA000000"', 1000, b"+CSIM:") == at.OK
    assert not mo.rebooted()
    assert mo.link.cmd(b"AT+CGLA=41,10,\"00CA000000\"", 1000, b"+CGLA:") == at.ERROR
    assert mo.rebooted()                        # a plain ERROR: AT+CMEE=0 again


def test_garbage_iccid_is_not_a_unicode_error():
    # before the fix: bytes(...).decode() raised UnicodeError out of Provisioner.run()
    mo, m, logs = start({b"AT+CCID": b"\r\n+CCID: 89\xff\xfe\x00\x8012\r\nOK\r\n"})
    assert mo.iccid == "89????12"
    assert "ICCID 89????12" in logs[-1]


def test_sim_not_ready_with_garbage_is_sim_fatal():
    e = raises(modem.SimFatal, start, {b"AT+CPIN?": b"\r\n+CPIN: SIM \xc3( PIN\r\nOK\r\n"})
    assert "SIM not ready: +CPIN: SIM ?( PIN" in str(e)


def test_printable():
    buf = bytearray(b"ab\x00\x7f\xffc~ ")
    assert modem.printable(buf, 1, 8) == "b???c~ "


def test_reg_stat_parsing():
    for line, st in ((b"+CREG: 0,1", 1), (b"+CGREG: 2,5,\"00C3\",\"0A1B\"", 5), (b"+CREG: 1", 1),
                     (b"+CREG: 0,", 0), (b"+CREG:", -1), (b"+CREG: x", -1),
                     (b"+CREG: 0,123", -1), (b"+CEREG: 0,4", 4)):
        assert modem.parse_reg_stat(line, len(line)) == st, line


def test_cpin_ok_without_cpin_line_is_retried_not_fatal():
    # before: SimFatal ("SIM not ready: ") on the first bare OK, never retried
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock))
    m.cpin_bare_ok = 2
    logs = []
    mo = modem.Modem(modem.Link(m, clock), logs.append)
    mo.start(answer_tries=2, reg_deadline_ms=2000, sim_tries=5)
    assert m.sent.count(b"AT+CPIN?") == 3
    assert "OK without +CPIN:" in "\n".join(logs)


def test_cpin_bare_ok_every_time_is_transient():
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock))
    m.cpin_bare_ok = 10
    mo = modem.Modem(modem.Link(m, clock))
    e = raises(modem.ModemError, mo.start, 2, 2000, 3)
    assert not isinstance(e, modem.SimFatal)
    assert m.sent.count(b"AT+CPIN?") == 3


def test_late_ok_shifting_replies_is_drained_at_cpin():
    # the first AT's OK comes late (behind the second AT's): every later command reads the
    # reply of the one before it, AT+CPIN? gets AT+CMEE=1's bare OK; the retry drains the
    # +CPIN: READY that was on its way and asks again
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock))
    m.hold_replies = 1
    logs = []
    mo = modem.Modem(modem.Link(m, clock), logs.append)
    mo.start(answer_tries=3, reg_deadline_ms=2000, sim_tries=3)
    assert m.sent[0:5] == [b"AT", b"AT", b"ATE0", b"AT+CMEE=1", b"AT+CPIN?"]
    assert m.sent.count(b"AT+CPIN?") == 2
    assert mo.iccid == "8944502509186389635"


def test_sim_missing_and_failure_stay_fatal():
    for cme in (10, 13):
        clock = FakeClock(1000)
        m = FakeModem(clock, FakeSim(clock))
        m.cpin_errors = [cme]
        mo = modem.Modem(modem.Link(m, clock))
        raises(modem.SimFatal, mo.start, 2, 2000, 3)
        assert m.sent.count(b"AT+CPIN?") == 1


def test_registration_timeout_is_not_registered_type():
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock), creg=2, cgreg=2)
    mo = modem.Modem(modem.Link(m, clock))
    e = raises(modem.NotRegistered, mo.start, 2, 2000, 3)
    assert isinstance(e, modem.ModemError)


# --- LTE registration (AT+CEREG?) and no flow control (AT&K0) --------------------------------

def _lte_start(cereg, creg=0, cgreg=0, lte=True, flow_control=True, deadline_ms=2000):
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock), creg=creg, cgreg=cgreg, cereg=cereg)
    logs = []
    mo = modem.Modem(modem.Link(m, clock), logs.append, lte=lte, flow_control=flow_control)
    mo.start(answer_tries=2, reg_deadline_ms=deadline_ms, sim_tries=2)
    return mo, m, logs, clock


def test_lte_modem_polls_cereg_and_registers_on_home_stat_1():
    # an LTE-only attach: neither CS (+CREG) nor 2G/3G PS (+CGREG) registration, EPS home
    mo, m, logs, clock = _lte_start(1)
    assert m.sent[4:8] == [b"AT+CREG?", b"AT+CGREG?", b"AT+CEREG?", b"AT+CCID"]
    assert "registered (CEREG stat 1)" in logs
    assert mo.iccid == "8944502509186389635"


def test_lte_modem_registers_on_roaming_stat_5():
    mo, m, logs, clock = _lte_start(5)
    assert "registered (CEREG stat 5)" in logs
    assert m.sent.count(b"AT+CEREG?") == 1


def test_lte_modem_keeps_polling_cereg_until_registered():
    # searching (2), then denied (3), then roaming (5): polled again after each wait, the
    # waits doubling from 250 ms (and 20 ms of pacing before each command after the first,
    # but for the two that follow a registration wait: the fake modem answers at once)
    mo, m, logs, clock = _lte_start([2, 3, 5], deadline_ms=10000)
    assert m.sent.count(b"AT+CEREG?") == 3
    assert m.sent.count(b"AT+CREG?") == 3
    assert clock.slept == 250 + 500 + 20 * (len(m.sent) - 3)
    assert "registered (CEREG stat 5)" in logs


def test_lte_modem_cereg_other_stats_are_not_registered():
    # 0 not searching, 2 searching, 3 denied, 4 unknown: the wait is bounded
    for st in (0, 2, 3, 4):
        e = raises(modem.NotRegistered, _lte_start, st)
        assert "2000 ms" in str(e)


def test_lte_modem_cereg_error_falls_back_to_creg_cgreg():
    # a modem that has no LTE answers AT+CEREG? with ERROR: CREG/CGREG still count
    mo, m, logs, clock = _lte_start(None, creg=0, cgreg=1)
    assert "registered (CGREG stat 1)" in logs
    assert b"AT+CEREG?" not in m.sent          # registered before it was asked
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock), creg=0, cgreg=0)
    mo = modem.Modem(modem.Link(m, clock), lte=True)
    raises(modem.NotRegistered, mo.start, 2, 2000, 2)
    assert m.sent.count(b"AT+CEREG?") >= 2     # asked on every round, its ERROR skipped


def test_cereg_is_not_asked_without_lte():
    # a 2G/3G profile never sends AT+CEREG? (the SARA-U201 would answer ERROR): an EPS-only
    # registration does not count there
    clock = FakeClock(1000)
    m = FakeModem(clock, FakeSim(clock), creg=0, cgreg=0, cereg=1)
    mo = modem.Modem(modem.Link(m, clock), lte=False)
    raises(modem.NotRegistered, mo.start, 2, 2000, 2)
    assert b"AT+CEREG?" not in m.sent
    assert m.sent.count(b"AT+CREG?") >= 2


def test_flow_control_off_sends_at_k0_after_cmee():
    mo, m, logs, clock = _lte_start(None, creg=1, lte=False, flow_control=False)
    assert m.sent[0:5] == [b"AT", b"ATE0", b"AT+CMEE=1", b"AT&K0", b"AT+CPIN?"]
    mo, m, logs, clock = _lte_start(None, creg=1, lte=False, flow_control=True)
    assert b"AT&K0" not in m.sent


def test_at_k0_error_is_a_modem_error_not_a_sim_error():
    # AT&K0 must answer OK (link.ok): an ERROR or a CME error stops the start as a plain
    # ModemError naming the command, before the SIM is asked anything
    for reply, text in ((b"\r\nERROR\r\n", "AT&K0: ERROR"),
                        (b"\r\n+CME ERROR: 4\r\n", "AT&K0: +CME ERROR: 4")):
        clock = FakeClock(1000)
        m = FakeModem(clock, FakeSim(clock))
        m.k0_errors = [reply]
        mo = modem.Modem(modem.Link(m, clock), flow_control=False)
        e = raises(modem.ModemError, mo.start, 2, 2000, 2)
        assert type(e) is modem.ModemError, type(e)
        assert str(e) == text
        assert m.sent[-1] == b"AT&K0" and b"AT+CPIN?" not in m.sent


# --- AT+CPIN? answers mangled on the UART (bytes dropped) -------------------------------------

class CpinModem(FakeModem):
    # answers AT+CPIN? with each of `answers` in turn, then normally
    def __init__(self, clock, answers):
        FakeModem.__init__(self, clock, FakeSim(clock))
        self.cpin_answers = list(answers)

    def _command(self, line):
        if line == b"AT+CPIN?" and self.cpin_answers:
            self.sent.append(line)
            return self._reply(self.cpin_answers.pop(0))
        return FakeModem._command(self, line)


def _cpin_start(answers, sim_tries=3):
    clock = FakeClock(1000)
    m = CpinModem(clock, answers)
    logs = []
    mo = modem.Modem(modem.Link(m, clock), logs.append)
    mo.start(answer_tries=2, reg_deadline_ms=2000, sim_tries=sim_tries)
    return mo, m, logs


def test_cpin_ready_without_the_space_is_ready():
    mo, m, logs = _cpin_start([b"\r\n+CPIN:READY\r\n\r\nOK\r\n"])
    assert m.sent.count(b"AT+CPIN?") == 1


def test_unreadable_cpin_answer_is_asked_again_not_sim_fatal():
    # before: a byte lost in "+CPIN: READY" (UART noise) was SimFatal, E_SIM with no retry
    for bad in (b"+CPIN: REDY", b"+CPIN: RADY", b"+CPIN: EADY", b"+CPIN:"):
        mo, m, logs = _cpin_start([b"\r\n" + bad + b"\r\n\r\nOK\r\n"])
        assert m.sent.count(b"AT+CPIN?") == 2, bad
        assert ("AT+CPIN?: unreadable answer %s, retry in 500 ms" % bad.decode()) in logs
    e = raises(modem.ModemError, _cpin_start, [b"\r\n+CPIN: REDY\r\n\r\nOK\r\n"] * 3)
    assert isinstance(e, modem.SimBusy)          # out of tries: E_SIM, retried


def test_pin_or_puk_request_stays_sim_fatal():
    for code in (b"SIM PIN", b"SIM PUK", b"PH-NET PIN", b"SIM PIN2", b"PH-SIM PIN"):
        e = raises(modem.SimFatal, _cpin_start,
                   [b"\r\n+CPIN: " + code + b"\r\n\r\nOK\r\n"])
        assert str(e) == "SIM not ready: +CPIN: " + code.decode()


class _ShortWriteUart:
    # a UART that takes at most `take` bytes a call (samd at timeout=0 with a full TX ring),
    # 0 on every other call, and answers OK once the whole command (ending CR) arrived
    def __init__(self, clock, take):
        self.clock = clock
        self.take = take
        self.got = bytearray()
        self.calls = 0
        self.out = bytearray()
        self.write_times = []

    def write(self, b):
        self.calls += 1
        self.write_times.append(self.clock.now)
        if self.calls % 2 == 0:
            return 0
        n = min(self.take, len(b))
        self.got += bytes(b[0:n])
        if self.got.endswith(b"\r"):
            self.out += b"\r\nOK\r\n"
        return n

    def any(self):
        return len(self.out)

    def readinto(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        n = min(n, len(self.out))
        buf[0:n] = self.out[0:n]
        self.out = self.out[n:]
        return n


def test_a_short_write_is_finished_not_dropped():
    # before: Link.cmd ignored write()'s count: a 540-byte AT+CSIM into a 256-byte TX ring
    # lost its tail and the modem never answered
    clock = FakeClock(1000)
    u = _ShortWriteUart(clock, 100)
    link = modem.Link(u, clock, max_cmd=600)
    cmd = b"AT+CSIM=10," + b"A" * 500
    assert link.cmd(cmd) == at.OK
    assert bytes(u.got) == cmd + b"\r"


def test_a_write_that_makes_no_progress_is_a_modem_timeout():
    clock = FakeClock(1000)
    u = _ShortWriteUart(clock, 0)
    link = modem.Link(u, clock)
    e = raises(modem.ModemTimeout, link.cmd, b"AT")
    assert "stalled" in str(e)


def test_commands_are_paced_20_ms_after_the_modems_last_byte():
    # MKRGSM waits >= 20 ms after a response before the next command; before: at once
    clock = FakeClock(1000)
    u = _ShortWriteUart(clock, 1000)
    link = modem.Link(u, clock)
    link.cmd(b"AT")
    t_reply = clock.now
    link.cmd(b"AT")
    assert u.write_times[-1] - t_reply >= 20
