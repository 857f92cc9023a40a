# Provisioner retries: the exact waits between attempts (backoff doubling from backoff_ms,
# capped at backoff_max_ms, plus a jitter of at most half the backoff drawn from the injected
# rng), and the number of attempts. Virtual clock that records every sleep; every attempt fails
# the same retryable way (AT&K0 answered ERROR: E_MODEM), which sleeps nowhere else but in
# the link's command pacing (waits of at most 20 ms after the modem's last byte: left out).
# Runs under pytest and MicroPython.
import apply
import modem
import provision
from fw_fakes import FakeClock, FakeModem, FakePin, FakeSim, RamFs


class RecClock(FakeClock):
    # sleeps: every wait longer than the link's 20 ms command pacing (paced: the others)
    def __init__(self, now=1000):
        FakeClock.__init__(self, now)
        self.sleeps = []
        self.paced = []

    def sleep_ms(self, ms):
        (self.sleeps if ms > 20 else self.paced).append(ms)
        FakeClock.sleep_ms(self, ms)


class SeqRng:
    # rng(n) -> n bytes: the next 16-bit value of the list, big-endian (as _jitter reads it)
    def __init__(self, values):
        self.values = list(values)
        self.calls = []

    def __call__(self, n):
        self.calls.append(n)
        v = self.values.pop(0)
        return bytes([v >> 8, v & 0xFF])


def failing_run(opt, rng, k0_errors=20):
    # a run whose every attempt fails retryably at AT&K0 -> (code, provisioner, modem, clock)
    clock = RecClock()
    m = FakeModem(clock, FakeSim(clock))
    m.k0_errors = [b"\r\nERROR\r\n"] * k0_errors
    fs = RamFs()
    logs = []
    applier = apply.Applier(fs, "/ztp")
    applier.register("iot:Alarm", apply.PinHandler(FakePin()))
    p = provision.Provisioner(modem.Link(m, clock), fs, applier,
                              bytes(16), "/ztp/channel", opt, rng, logs.append)
    code = p.run()
    return code, p, m, clock, logs


def test_waits_double_are_capped_and_jittered_exactly():
    opt = provision.Options(attempts=6, backoff_ms=1000, backoff_max_ms=5000,
                            flow_control=False)
    rng = SeqRng([0x0000, 0xFFFF, 0x1234, 0x0201, 0x00FA])
    code, p, m, clock, logs = failing_run(opt, rng)
    assert code == provision.E_MODEM
    # backoff 1000, 2000, 4000, then capped at 5000; jitter = value % (backoff // 2 + 1):
    # 0 % 501, 65535 % 1001 = 470, 4660 % 2001 = 658, 513 % 2501, 250 % 2501
    assert clock.sleeps == [1000, 2470, 4658, 5513, 5250]
    assert rng.calls == [2, 2, 2, 2, 2]          # one draw per wait, none after the last try
    assert m.sent.count(b"AT&K0") == 6           # attempts bounded by Options.attempts
    assert "retry in 4658 ms" in logs
    assert "attempt 6/6 failed: E_MODEM AT&K0: ERROR" in logs


def test_without_rng_the_waits_are_the_bare_backoff():
    opt = provision.Options(attempts=7, backoff_ms=300, backoff_max_ms=2000,
                            flow_control=False)
    code, p, m, clock, logs = failing_run(opt, None)
    assert clock.sleeps == [300, 600, 1200, 2000, 2000, 2000]
    assert m.sent.count(b"AT&K0") == 7


def test_jitter_stays_within_half_the_backoff_whatever_the_rng_gives():
    # largest values, values just at and above the span: jitter in [0, backoff // 2]
    values = [0xFFFF, 0xFFFE, 500, 501, 1000, 1001, 2000, 2001, 0x7FFF, 0x8000]
    opt = provision.Options(attempts=11, backoff_ms=1000, backoff_max_ms=4000,
                            flow_control=False)
    code, p, m, clock, logs = failing_run(opt, SeqRng(values))
    bases = [1000, 2000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000]
    assert len(clock.sleeps) == len(bases)
    for wait, base in zip(clock.sleeps, bases):
        assert base <= wait <= base + base // 2, (wait, base)
    # the bound is reached (inclusive) and the wait never exceeds 1.5 x backoff_max_ms
    assert clock.sleeps[4] == 4000 + 1000 and max(clock.sleeps) <= 4000 * 3 // 2


def test_jitter_function():
    p = failing_run(provision.Options(attempts=1, flow_control=False), None)[1]
    assert p._jitter(100) == 0                   # no rng: no jitter
    p.rng = SeqRng([0xFFFF, 101, 100, 0])
    assert p._jitter(0) == 0 and p.rng.calls == []     # nothing to draw from
    assert p._jitter(100) == 65535 % 101
    assert p._jitter(100) == 0                   # 101 % 101
    assert p._jitter(100) == 100                 # the bound itself
    assert p._jitter(100) == 0


def test_first_wait_is_capped_too():
    # backoff_ms above backoff_max_ms: every base wait is backoff_max_ms (before: the first
    # wait used backoff_ms uncapped)
    opt = provision.Options(attempts=3, backoff_ms=50000, backoff_max_ms=30000,
                            flow_control=False)
    code, p, m, clock, logs = failing_run(opt, None)
    assert clock.sleeps == [30000, 30000]


def test_non_retryable_failure_never_waits():
    clock = RecClock()
    m = FakeModem(clock, FakeSim(clock))
    m.cpin_errors = [10]                         # SIM not inserted: E_SIM, no retry
    fs = RamFs()
    rng = SeqRng([0x1234] * 5)
    p = provision.Provisioner(modem.Link(m, clock), fs, apply.Applier(fs, "/ztp"),
                              bytes(16), "/ztp/channel",
                              provision.Options(attempts=5, backoff_ms=1000), rng)
    assert p.run() == provision.E_SIM
    assert clock.sleeps == [] and rng.calls == []
    assert m.sent.count(b"AT+CPIN?") == 1


def test_retry_after_a_failure_then_success_waits_once():
    opt = provision.Options(attempts=4, backoff_ms=700, backoff_max_ms=5000,
                            flow_control=False, poll_first_ms=10, poll_ms=10)
    rng = SeqRng([0x0105])
    code, p, m, clock, logs = failing_run(opt, rng, k0_errors=1)
    assert code == provision.OK, p.detail
    assert clock.sleeps[0] == 700 + 0x0105 % 351
    assert rng.calls == [2]
    assert m.sent.count(b"AT&K0") == 2


def test_zero_attempts_still_tries_once():
    # before: Options(attempts=0) made no attempt and run() raised KeyError (result -1 has
    # no name) on the device's boot path
    opt = provision.Options(attempts=0, flow_control=False)
    code, p, m, clock, logs = failing_run(opt, None)
    assert code == provision.E_MODEM
    assert m.sent.count(b"AT&K0") == 1 and clock.sleeps == []
