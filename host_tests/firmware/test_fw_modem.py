# lib/modem.py alone: Modem.start() against the fake modem, garbage in answers (runs under
# pytest and MicroPython).
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
