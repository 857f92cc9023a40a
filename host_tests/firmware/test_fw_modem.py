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
