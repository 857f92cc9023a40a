# Whole provisioning runs against the fake modem + SIM (runs under pytest and MicroPython);
# at the end, runs with the report to the service (issue 17: sent right before CA 00, kept
# until the service answered, the run's own outcome stored as the next one) and the
# re-provisioning schedule.
import json

import apply
import channel
import modem
import provision
from fw_fakes import REFERENCE_BODY, FakePin, RamFs, make_rig, rng, tohex
from test_fw_apply import OTHER_BODY, REPORT, _applier, _reporting, crc_name

DEVICE_ID = bytes(range(16))


def take_settings(settings, commit):
    # the application of these runs takes any settings object (lib/apply.py rejects settings
    # when no handler is registered)
    pass


def run_flow(body=REFERENCE_BODY, setup=None, options=None, fs=None, pin=None, **sim_kw):
    clock, sim, m, fs0 = make_rig(body, **sim_kw)
    fs = fs or fs0
    if setup is not None:
        setup(sim, m, fs)
    logs = []
    applier = apply.Applier(fs, "/ztp", logs.append)
    applier.register("iot:Alarm", apply.PinHandler(pin or FakePin()))
    applier.settings_handler = take_settings
    link = modem.Link(m, clock)
    opt = options or provision.Options(backoff_ms=100, poll_deadline_ms=60000,
                                       reg_deadline_ms=5000)
    p = provision.Provisioner(link, fs, applier, DEVICE_ID, "/ztp/channel", opt, rng,
                              logs.append)
    code = p.run()
    return code, p, sim, m, fs, logs


def expected_at_lines(body_len):
    did = tohex(DEVICE_ID)
    lines = [
        "AT", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CREG?", "AT+CCID",
        'AT+CSIM=10,"0070000001"',                                  # MANAGE CHANNEL open
        'AT+CSIM=34,"01A4040C0CF0706F646773616665320101"',          # SELECT SAFE2 (P2=0C)
        'AT+CSIM=42,"01DA02C010' + did + '"',                       # set DeviceID
        'AT+CSIM=10,"01CA000000"',                                  # start config request
        'AT+CSIM=10,"01CC020000"',                                  # poll status -> 61 04
        'AT+CSIM=10,"01C0000004"',                                  # GET RESPONSE
        'AT+CSIM=10,"01CA010000"',                                  # read config -> 61 xx
        'AT+CSIM=10,"01C00000%02X"' % (body_len & 0xFF),            # GET RESPONSE
        'AT+CSIM=10,"0070800100"',                                  # MANAGE CHANNEL close
    ]
    return [s.encode() for s in lines]


def test_happy_path_at_bytes_match_protocol():
    pin = FakePin()
    code, p, sim, m, fs, logs = run_flow(pin=pin)
    assert code == provision.OK, p.detail
    assert m.sent == expected_at_lines(len(REFERENCE_BODY))
    assert sim.device_id == DEVICE_ID
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY
    assert pin.v == 1
    assert sim.open == []                       # channel closed
    assert "/ztp/channel" not in fs.files       # nothing remembered


def test_unchanged_body_not_applied_again():
    pin = FakePin()
    code, p, sim, m, fs, logs = run_flow(pin=pin)
    assert code == provision.OK
    code2, p2, sim2, m2, fs2, logs2 = run_flow(fs=fs, pin=pin)
    assert code2 == provision.UNCHANGED
    assert pin.history == [1]


def test_polls_fast_after_first_wait():
    code, p, sim, m, fs, logs = run_flow(done_after_ms=5000)
    assert code == provision.OK, p.detail
    # 500 ms, then every 250 ms: done after ~5 s, seen within one interval (~19 polls)
    assert 16 <= p.polls <= 21
    assert sim.open == []


def test_polls_back_off_after_the_fast_window():
    # a SIM still busy after poll_fast_ms is retrying with its own backoff: waits grow x3/2
    opt = provision.Options(poll_first_ms=500, poll_ms=200, poll_fast_ms=2000,
                            poll_max_ms=8000)
    code, p, sim, m, fs, logs = run_flow(done_after_ms=20000, options=opt)
    assert code == provision.OK, p.detail
    # 500, 200 x7 (to 1.9 s), 300, 450, 675, 1012, 1518, 2277, 3415, 5122, 7683 (~24.5 s)
    assert 15 <= p.polls <= 18


def test_previous_growing_schedule_still_expressible():
    opt = provision.Options(poll_first_ms=500, poll_fast_ms=0, poll_max_ms=8000)
    code, p, sim, m, fs, logs = run_flow(done_after_ms=5000, options=opt)
    assert code == provision.OK, p.detail
    # 500, 750, 1125, 1687, 2530 ms: done after ~5 s within 5 polls
    assert 3 <= p.polls <= 6


def test_status_never_finishes_deadline_and_channel_closed():
    opt = provision.Options(backoff_ms=100, poll_deadline_ms=20000, reg_deadline_ms=5000)
    code, p, sim, m, fs, logs = run_flow(never_done=True, options=opt)
    assert code == provision.E_DEADLINE
    assert sim.open == []
    assert "/ztp/config.json" not in fs.files


def test_status_000F_with_result_code():
    # (0194 = HTTP 404 is E_NO_CONFIG: test_fw_e2e_findings.py)
    code, p, sim, m, fs, logs = run_flow(state=0x000F, result=0x0193)
    assert code == provision.E_REQUEST_FAILED
    assert "0193" in p.detail
    assert sim.open == []


def test_status_0003_no_config():
    code, p, sim, m, fs, logs = run_flow(state=0x0003)
    assert code == provision.E_NO_CONFIG
    assert sim.open == []


def test_stale_0007_at_start_is_not_read():
    code, p, sim, m, fs, logs = run_flow(stale=True, done_after_ms=3000)
    assert code == provision.OK
    ca00 = m.sent.index(b'AT+CSIM=10,"01CA000000"')
    first_poll = m.sent.index(b'AT+CSIM=10,"01CC020000"')
    assert ca00 < first_poll
    assert p.polls >= 2      # waited for this request, did not take the stale 0007


def test_applet_missing_6A82():
    code, p, sim, m, fs, logs = run_flow(applet=False)
    assert code == provision.E_APPLET_MISSING
    assert "6A82" in p.detail
    assert sim.open == []


def test_no_free_channel_6881_resets_modem_then_succeeds():
    def setup(sim, m, fs):
        sim.free = []
        sim.open = [1, 2, 3]
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert m.reset_count == 1
    assert b"AT+CFUN=16" in m.sent


def test_channel_left_open_by_crash_is_closed_at_boot():
    def setup(sim, m, fs):
        sim.free = [1, 3]
        sim.open = [2]
        fs.files["/ztp/channel"] = b"2"
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK
    assert m.sent[6] == b'AT+CSIM=10,"0070800200"'
    assert sim.open == []
    assert "/ztp/channel" not in fs.files


def test_6F00_retried_once():
    def setup(sim, m, fs):
        sim.faults[0xA4] = [b"\x6F\x00"]
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK
    assert m.sent.count(b'AT+CSIM=34,"01A4040C0CF0706F646773616665320101"') == 2


def test_6F00_twice_fails_attempt_and_retries_with_channel_closed():
    def setup(sim, m, fs):
        sim.faults[0xA4] = [b"\x6F\x00", b"\x6F\x00"]
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK           # second attempt succeeds
    assert m.sent.count(b'AT+CSIM=10,"0070800100"') == 2
    assert sim.open == []


def test_91xx_is_success():
    def setup(sim, m, fs):
        sim.proactive = True
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail


def test_6Cxx_resends_with_le():
    def setup(sim, m, fs):
        sim.wrong_le_status = True
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert b'AT+CSIM=10,"01CC020004"' in m.sent


def test_body_of_255_bytes_accepted_256_rejected():
    body = (b'{"a":"' + b"x" * 60 + b'","b":"' + b"x" * 60 + b'","c":"' + b"x" * 60
            + b'","d":"' + b"x" * 46 + b'"}')
    assert len(body) == 255
    code, p, sim, m, fs, logs = run_flow(body)
    assert code == provision.OK, p.detail
    code, p, sim, m, fs, logs = run_flow(body[:-2] + b'x"}')
    assert code == provision.E_BODY_TOO_LONG
    assert "/ztp/config.json" not in fs.files
    assert sim.open == []


def test_invalid_json_rejected_nothing_applied():
    pin = FakePin()
    code, p, sim, m, fs, logs = run_flow(b'{"configuration": {"config": [', pin=pin)
    assert code == provision.E_CONFIG_INVALID
    assert pin.history == []
    assert "/ztp/config.json" not in fs.files


def test_write_fails_mid_apply_old_config_intact():
    pin = FakePin()
    code, p, sim, m, fs, logs = run_flow(pin=pin)
    assert code == provision.OK
    new = REFERENCE_BODY.replace(b'"On"', b'"Off"')
    fs.fail_after = 10
    code, p, sim, m, fs, logs = run_flow(new, fs=fs, pin=pin)
    assert code == provision.E_APPLY
    fs.fail_after = None
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY
    assert "/ztp/config.json.tmp" not in fs.files
    assert pin.history == [1]


def test_silent_modem():
    def setup(sim, m, fs):
        m.silent = True
    opt = provision.Options(attempts=2, backoff_ms=100)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.E_MODEM
    assert "silent" in p.detail


def test_a_modem_that_stops_answering_is_reset_by_its_reset_line_before_the_retry():
    # before: only AT+CFUN=16 for a full channel table; a silent modem was asked AT again
    # and again. Now the next attempt pulses GSM_RESETN (modem_power) first.
    clock, sim, m, fs = make_rig()
    pulses = []

    def power():
        pulses.append(clock.now)
        m.silent = False               # the reset brings it back
    m.silent = True
    applier = apply.Applier(fs, "/ztp")
    applier.register("iot:Alarm", apply.PinHandler(FakePin()))
    opt = provision.Options(attempts=2, backoff_ms=100, reg_deadline_ms=5000)
    p = provision.Provisioner(modem.Link(m, clock), fs, applier, DEVICE_ID, "/ztp/channel",
                              opt, rng, None, power)
    assert p.run() == provision.OK
    assert len(pulses) == 1
    assert b"AT+CFUN=16" not in m.sent


def test_a_modem_that_rebooted_by_itself_is_started_again_before_the_retry():
    # e2e finding (test_modem_garbage_and_reboot_mid_flow): the modem reboots after answering
    # a status poll: echo on, AT+CMEE=0, the SIM reset (channel 1 gone: 6881), SIM busy at
    # first. The retry runs the whole start sequence again, then opens a new channel.
    def setup(sim, m, fs):
        m.reboot_after = b'"01CC020000"'

    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert m.reboots == 1
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY
    after = m.sent[m.sent.index(b'AT+CSIM=10,"01CC020000"') + 1:]
    start = after.index(b"AT")
    assert after[start:start + 5] == [b"AT", b"ATE0", b"AT+CMEE=1", b"AT+CPIN?", b"AT+CPIN?"]
    assert after.index(b'AT+CSIM=10,"0070000001"') > start   # a new channel, after the start
    assert [t for t in logs if "rebooted" in t]
    assert sim.open == [] and "/ztp/channel" not in fs.files


def test_garbage_echo_urcs_and_split_reads():
    def setup(sim, m, fs):
        m.echo = True
        m.garbage_before = b"\x00\xff\xfe garbage \r\n\xa5\xa5\r\n"
        m.urc_in_csim = True
        m.chunk = 7
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY


def test_sim_busy_retried_sim_missing_fatal():
    def busy(sim, m, fs):
        m.cpin_errors = [14, 14]
        m.csim_errors = [b"\r\n+CME ERROR: 14\r\n"]
    code, p, sim, m, fs, logs = run_flow(setup=busy)
    assert code == provision.OK, p.detail

    def missing(sim, m, fs):
        m.cpin_errors = [10]
    code, p, sim, m, fs, logs = run_flow(setup=missing)
    assert code == provision.E_SIM
    assert m.sent.count(b"AT+CPIN?") == 1


def test_sw_6A80_on_set_device_id_closes_channel():
    # the card refuses SET DEVICEID (SW 6A80) on every attempt: E_APDU, channel closed
    def setup(sim, m, fs):
        sim.faults[0xDA] = [b"\x6A\x80", b"\x6A\x80", b"\x6A\x80"]
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.E_APDU
    assert "6A80" in p.detail
    assert sim.open == []


_CLOSE_1 = b'AT+CSIM=10,"0070800100"'
_SELECT = b'AT+CSIM=34,"01A4040C0CF0706F646773616665320101"'


def test_cme_error_after_open_closes_channel_now():
    # +CME ERROR: 100 (not SIM busy) to SELECT, after MANAGE CHANNEL open: the channel is
    # closed in this attempt, the retry succeeds
    code, p, sim, m, fs, logs = run_flow(setup=_cme_on_select(1))
    assert code == provision.OK, p.detail
    first_close = m.sent.index(_CLOSE_1)
    assert m.sent.index(_SELECT) < first_close < m.sent.index(b'AT+CSIM=10,"0070000001"', 7)
    assert "+CME ERROR: 100" in "\n".join(logs)
    assert sim.open == [] and "/ztp/channel" not in fs.files


def _cme_on_select(n):
    # the first n AT+CSIM commands from SELECT on answer +CME ERROR: 100
    class Hook:
        pass

    def setup(sim, m, fs):
        orig = m._command

        def command(line):
            if n and line.startswith(b"AT+CSIM=34,") and not Hook.armed:
                Hook.armed = True
            if Hook.armed and Hook.left and line.startswith(b"AT+CSIM="):
                Hook.left -= 1
                m.sent.append(line)
                return m._reply(b"\r\n+CME ERROR: 100\r\n")
            return orig(line)
        Hook.armed = False
        Hook.left = n
        m._command = command
    return setup


def test_cme_error_on_select_and_close_closed_at_next_attempt():
    # the close fails too: the number stays remembered in flash and the next attempt closes
    # it first (CLOSE_STALE), then the run succeeds
    code, p, sim, m, fs, logs = run_flow(setup=_cme_on_select(2))
    assert code == provision.OK, p.detail
    opens = [i for i, x in enumerate(m.sent) if x == b'AT+CSIM=10,"0070000001"']
    assert len(opens) == 2
    # attempt 2: the remembered channel 1 is closed before the new open
    assert _CLOSE_1 in m.sent[opens[0] + 1:opens[1]]
    assert m.sent[opens[1] - 1] == _CLOSE_1
    assert "closing channel 1 left open" in "\n".join(logs)
    assert sim.open == [] and "/ztp/channel" not in fs.files


def test_cme_error_on_every_attempt_ends_e_modem_channel_remembered():
    opt = provision.Options(attempts=2, backoff_ms=100, reg_deadline_ms=5000)
    code, p, sim, m, fs, logs = run_flow(setup=_cme_on_select(100), options=opt)
    assert code == provision.E_MODEM
    assert "+CME ERROR: 100" in p.detail
    # every close was refused: the card still has it open, flash still names it
    assert sim.open == [1]
    assert fs.files["/ztp/channel"] == b"1"


def test_modem_silent_after_open_channel_closed_at_next_attempt():
    # the modem goes silent at SELECT (SELECT and the close time out), then answers again:
    # the next attempt restarts the modem and closes the remembered channel first
    def setup(sim, m, fs):
        m.silence_at = b"AT+CSIM=34,"
        m.silent_cmds = 2
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    i = m.sent.index(_SELECT)
    assert m.sent[i + 1] == _CLOSE_1               # closed at once (timed out)
    assert m.sent[i + 2] == b"AT"                  # retry: modem restarted
    j = m.sent.index(b'AT+CSIM=10,"0070000001"', i)
    assert m.sent[j - 1] == _CLOSE_1               # remembered channel closed first
    assert "closing channel 1 failed" in "\n".join(logs)
    assert sim.open == [] and "/ztp/channel" not in fs.files


def test_a_late_reply_after_a_timeout_is_drained_before_the_close():
    # SELECT answered 10.1 s later (timeout 10 s). Before: the close went out at once and
    # read SELECT's late 9000 as its own answer; the close's real answer then answered the
    # next command, and so on down the line. Now the late reply is drained first.
    def setup(sim, m, fs):
        m.late_at = b"AT+CSIM=34,"
        m.late_ms = 10100
        sim.faults[0xA4] = [b"\x69\x99"]    # what the late SELECT answer says
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    i = m.sent.index(_SELECT)
    assert m.sent[i + 1] == _CLOSE_1
    text = "\n".join(logs)
    assert "6999" not in text and "closing channel 1 failed" not in text
    assert sim.open == [] and "/ztp/channel" not in fs.files


def test_modem_silent_for_good_after_open_ends_e_modem_channel_remembered():
    def setup(sim, m, fs):
        m.silence_at = b"AT+CSIM=34,"
    opt = provision.Options(attempts=2, backoff_ms=100, reg_deadline_ms=5000)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.E_MODEM
    assert fs.files["/ztp/channel"] == b"1"       # closed at the next boot (CLOSE_STALE)
    # next boot, modem back: the channel is closed before anything else
    m.silent = False
    code2, p2, sim2, m2, fs2, logs2 = run_flow(fs=fs)
    assert code2 == provision.OK
    assert m2.sent[6] == _CLOSE_1


def test_garbled_csim_reply_to_read_config_is_retried():
    # a garbled +CSIM: line (non-hex) to READ CONFIG is a link fault, not an over-long body:
    # the attempt is retried (before: E_BODY_TOO_LONG at once, no retry)
    def setup(sim, m, fs):
        m.csim_garble = [b'"01CA010000"']
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert m.sent.count(b'AT+CSIM=10,"01CA010000"') == 2
    assert "E_APDU" in "\n".join(logs)
    assert sim.open == []


def test_garbled_csim_reply_on_every_read_config_ends_e_apdu():
    def setup(sim, m, fs):
        m.csim_garble = [b'"01CA010000"'] * 3
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.E_APDU
    assert "non-hex" in p.detail
    assert sim.open == []


def test_not_registered():
    def setup(sim, m, fs):
        m.creg = 2
        m.cgreg = 2
    opt = provision.Options(attempts=1, reg_deadline_ms=3000)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.E_NOT_REGISTERED


def test_data_only_sim_registers_on_cgreg():
    def setup(sim, m, fs):
        m.creg = 0
        m.cgreg = 5
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK


def test_log_has_a_line_per_step():
    code, p, sim, m, fs, logs = run_flow()
    text = "\n".join(logs)
    for s in ("MODEM_START", "OPEN_CHANNEL", "SELECT", "SET_DEVICE_ID", "START_REQUEST",
              "WAIT_STATUS", "READ_CONFIG", "CLOSE_CHANNEL", "APPLY", "DONE"):
        assert s in text
    assert channel.SAFE2_AID == bytes([0xF0]) + b"podgsafe2" + bytes([1, 1])


def _run_with_start_error(exc):
    # a run whose modem start raises exc (the rest of the rig as usual)
    clock, sim, m, fs = make_rig()
    logs = []
    applier = apply.Applier(fs, "/ztp", logs.append)
    link = modem.Link(m, clock)
    opt = provision.Options(attempts=1, backoff_ms=100)
    p = provision.Provisioner(link, fs, applier, DEVICE_ID, "/ztp/channel", opt, rng,
                              logs.append)

    def start(reg_deadline_ms=0):
        raise exc
    p.modem.start = start
    return p.run(), p


def test_result_code_follows_the_exception_type_not_its_text():
    # before: any ModemError whose text said "registered" was E_NOT_REGISTERED
    code, p = _run_with_start_error(modem.ModemError("AT+COPS: unregistered operator"))
    assert code == provision.E_MODEM
    code, p = _run_with_start_error(modem.NotRegistered("no network"))
    assert code == provision.E_NOT_REGISTERED
    code, p = _run_with_start_error(modem.SimFatal("SIM registered nowhere"))
    assert code == provision.E_SIM


class _StuckClock:
    # a clock whose ticks never move (a broken tick source): sleep_ms returns at once
    def __init__(self):
        self.now = 1000
        self.slept = 0

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        self.slept += ms


class _BusyApdu:
    # APDU layer of a SIM that is forever busy (status 0001), without the modem: quick
    # enough to poll 10000 times
    def __init__(self):
        self.rsp = bytearray(258)
        self.rsp_len = 0
        self.sw = 0x9000
        self.proactive = False
        self.read_config = 0

    def transmit(self, cla, ins, p1, p2, data=None, le=-1):
        self.rsp_len = 0
        if ins == 0x70 and p1 == 0:
            self.rsp[0] = 1
            self.rsp_len = 1
        elif ins == 0xCC:
            self.rsp[0:4] = b"\x00\x01\x00\x00"
            self.rsp_len = 4
        elif ins == 0xCA and p1 == 1:
            self.read_config += 1
            self.rsp[0:2] = b"{}"
            self.rsp_len = 2
        return 0x9000


def test_poll_loop_out_of_rounds_is_a_deadline_not_done():
    # the tick source is stuck, so the deadline never fires; the bounded poll loop runs
    # out. Before: it fell through to READ CONFIG as if the SIM were done.
    clock = _StuckClock()
    fs = RamFs()
    logs = []
    applier = apply.Applier(fs, "/ztp", logs.append)
    link = modem.Link(None, clock)
    opt = provision.Options(attempts=1, poll_first_ms=1, poll_ms=1, poll_fast_ms=0,
                            poll_max_ms=1)
    p = provision.Provisioner(link, fs, applier, DEVICE_ID, "/ztp/channel", opt, rng,
                              logs.append)
    a = _BusyApdu()
    p.apdu = a
    p.channels.apdu = a
    p._modem_up = True
    code = p.run()
    assert code == provision.E_DEADLINE, p.detail
    assert a.read_config == 0
    assert p.polls == 10000


# --- LTE and no-flow-control modem starts through the provisioning flow ----------------------

def test_lte_option_registers_on_cereg_and_provisions():
    def setup(sim, m, fs):
        m.creg = 0
        m.cgreg = 4
        m.cereg = [2, 5]
    opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000,
                            lte=True)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.OK, p.detail
    assert m.sent.count(b"AT+CEREG?") == 2
    assert "registered (CEREG stat 5)" in logs
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY


def test_without_lte_option_cereg_registration_is_not_registered():
    def setup(sim, m, fs):
        m.creg = 0
        m.cgreg = 0
        m.cereg = 1
    opt = provision.Options(attempts=1, reg_deadline_ms=3000)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.E_NOT_REGISTERED
    assert b"AT+CEREG?" not in m.sent


def test_flow_control_off_sends_at_k0_in_the_start_sequence():
    opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000,
                            flow_control=False)
    code, p, sim, m, fs, logs = run_flow(options=opt)
    assert code == provision.OK, p.detail
    want = expected_at_lines(len(REFERENCE_BODY))
    assert m.sent == want[0:3] + [b"AT&K0"] + want[3:]


def test_at_k0_error_once_is_retried_and_provisions():
    # an ERROR to AT&K0 fails the attempt as E_MODEM (retryable): the next attempt starts the
    # modem again from AT and succeeds
    def setup(sim, m, fs):
        m.k0_errors = [b"\r\nERROR\r\n"]
    opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000,
                            flow_control=False)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.OK, p.detail
    assert m.sent.count(b"AT&K0") == 2
    assert "attempt 1/3 failed: E_MODEM AT&K0: ERROR" in logs
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY


def test_at_k0_error_every_time_ends_e_modem_without_touching_the_sim():
    def setup(sim, m, fs):
        m.k0_errors = [b"\r\nERROR\r\n"] * 5
    opt = provision.Options(attempts=3, backoff_ms=100, flow_control=False)
    code, p, sim, m, fs, logs = run_flow(setup=setup, options=opt)
    assert code == provision.E_MODEM
    assert p.detail == "AT&K0: ERROR"
    assert m.sent.count(b"AT&K0") == 3
    assert b"AT+CPIN?" not in m.sent and sim.log == []
    assert "/ztp/config.json" not in fs.files


def test_modem_refusing_manage_channel_in_csim_provisions_over_ccho_cgla():
    # Some modems refuse MANAGE CHANNEL through AT+CSIM. Before: E_MODEM on every attempt.
    # Now AT+CCHO opens a session (the modem selects SAFE2), AT+CGLA carries the APDUs and
    # AT+CCHC closes it; both answer shapes of AT+CCHO ("+CCHO: n", a bare "n") are taken.
    for prefix in (True, False):
        def setup(sim, m, fs):
            m.csim_refuses_manage_channel = True
            m.ccho_prefix = prefix
        code, p, sim, m, fs, logs = run_flow(setup=setup)
        assert code == provision.OK, p.detail
        assert b'AT+CCHO="' + tohex(channel.SAFE2_AID).encode() + b'"' in m.sent
        cgla = [c for c in m.sent if c.startswith(b"AT+CGLA=41,")]
        assert len(cgla) >= 4                     # DeviceID, start, polls, read config
        assert not [c for c in m.sent if c.startswith(b"AT+CSIM=") and c[14:16] != b"70"]
        assert m.sent[-1] == b"AT+CCHC=41"
        assert sim.open == [] and m.sessions == {}
        assert "/ztp/channel" not in fs.files
        assert fs.files["/ztp/config.json"] == REFERENCE_BODY


def test_ccho_session_left_open_by_a_crash_is_closed_at_boot():
    def setup(sim, m, fs):
        m.csim_refuses_manage_channel = True
        m.sessions[42] = 2
        sim.free.remove(2)
        sim.open.append(2)
        fs.files["/ztp/channel"] = b"s42"
    code, p, sim, m, fs, logs = run_flow(setup=setup)
    assert code == provision.OK, p.detail
    assert m.sent.index(b"AT+CCHC=42") < m.sent.index(b'AT+CSIM=10,"0070000001"')
    assert 42 not in m.sessions and "/ztp/channel" not in fs.files


# --- provisioning runs with reports --------------------------------------------------------------
class Device:
    # one device across provisioning runs (flash, applier, reports kept; a fresh Provisioner
    # per run, as lib/ztpmain.py makes one)
    def __init__(self, body=REFERENCE_BODY, **sim_kw):
        self.clock, self.sim, self.modem, self.fs = make_rig(body, **sim_kw)
        self.logs = []
        self.applier = _reporting(self.fs, self.logs)

    def run(self):
        opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000,
                                attempts=1)
        self.prov = provision.Provisioner(modem.Link(self.modem, self.clock), self.fs,
                                          self.applier, DEVICE_ID, "/ztp/channel", opt, rng,
                                          self.logs.append)
        return self.prov.run()

    def pending(self):
        if REPORT not in self.fs.files:
            return None
        return json.loads(self.fs.files[REPORT])

    def apdus(self):
        # the SAFE2 APDUs of the runs so far, by name
        names = []
        for a in self.sim.log:
            if a[1] == 0xDA:
                names.append("C1" if a[3] == 0xC1 else "C0")
            elif a[1] == 0xCA:
                names.append("CA00" if a[2] == 0 else "CA01")
        return names


def test_applied_run_leaves_an_applied_report_and_sends_nothing_first():
    d = Device()
    assert d.run() == provision.OK
    assert d.sim.telemetry == []                     # nothing was pending
    assert d.fs.files[REPORT] == apply.build_report(
        "applied", 0, crc_name(REFERENCE_BODY), "2021-05-31")
    assert d.pending() == {"v": 1, "digest": crc_name(REFERENCE_BODY), "outcome": "applied",
                           "code": 0, "version": "2021-05-31"}


def test_pending_report_goes_right_before_ca00_and_is_removed_once_answered():
    d = Device()
    assert d.run() == provision.OK
    sent = d.fs.files[REPORT]
    assert d.run() == provision.UNCHANGED
    assert d.sim.telemetry == [sent]
    assert d.apdus() == ["C0", "CA00", "CA01", "C0", "C1", "CA00", "CA01"]
    assert "report delivered" in d.logs
    # the report gone, the run's own outcome is the next one
    assert d.pending() == {"v": 1, "digest": crc_name(REFERENCE_BODY), "outcome": "unchanged",
                           "code": 1, "version": "2021-05-31"}
    # the AT bytes of the C1: the report as the APDU's data, on the SAFE2 channel
    c1 = b'AT+CSIM=%d,"01DA02C1%02X' % (2 * (5 + len(sent)), len(sent))
    assert any(line.startswith(c1) for line in d.modem.sent)


def test_refused_report_never_blocks_provisioning_and_is_sent_next_time():
    d = Device()
    d.run()
    applied = d.fs.files[REPORT]
    d.sim.telemetry_sw = b"\x69\x85"                 # the applet refuses C1
    d.sim.body = OTHER_BODY
    assert d.run() == provision.OK                   # provisioning went on
    assert "report not sent" in "\n".join(d.logs)
    # the new outcome replaced the undelivered one (the newest state wins)
    assert d.pending()["outcome"] == "applied"
    assert d.pending()["digest"] == crc_name(OTHER_BODY)
    newest = d.fs.files[REPORT]
    assert newest != applied
    d.sim.telemetry_sw = None
    assert d.run() == provision.UNCHANGED
    assert d.sim.telemetry == [newest]


def test_unchanged_never_hides_an_undelivered_report():
    d = Device()
    d.run()
    applied = d.fs.files[REPORT]
    d.sim.telemetry_sw = b"\x6D\x00"
    assert d.run() == provision.UNCHANGED
    assert d.fs.files[REPORT] == applied             # kept as it was
    d.sim.telemetry_sw = None
    assert d.run() == provision.UNCHANGED
    assert d.sim.telemetry == [applied]
    assert d.pending()["outcome"] == "unchanged"


def test_report_kept_when_the_request_after_it_fails():
    d = Device()
    d.run()
    applied = d.fs.files[REPORT]
    d.sim.final_state = 0x000F
    d.sim.result = 0xF004                            # OPEN CHANNEL failed: no service
    assert d.run() == provision.E_REQUEST_FAILED
    assert d.sim.telemetry == [applied]
    assert d.fs.files[REPORT] == applied             # not known to have arrived
    d.sim.result = 0x0194                            # the service answered (404)
    assert d.run() == provision.E_NO_CONFIG
    assert REPORT not in d.fs.files                  # delivered; nothing new to say
    assert d.sim.telemetry == [applied, applied]


def test_report_kept_when_the_status_poll_times_out():
    d = Device()
    d.run()
    applied = d.fs.files[REPORT]
    d.sim.never_done = True
    assert d.run() == provision.E_DEADLINE
    assert d.fs.files[REPORT] == applied


def test_invalid_body_rejected_with_code_41_and_its_digest():
    d = Device()
    d.run()
    bad = b'{"configuration": {"config": ['
    d.sim.body = bad
    assert d.run() == provision.E_CONFIG_INVALID
    assert d.pending() == {"v": 1, "digest": crc_name(REFERENCE_BODY), "outcome": "rejected",
                           "code": 41, "rejected": crc_name(bad), "version": "2021-05-31"}


def test_body_nobody_handles_rejected_with_code_42():
    d = Device()
    body = b'{"configuration":{"config":[{"action":"iot:Siren","effect":"On"}]}}'
    d.sim.body = body
    assert d.run() == provision.E_APPLY
    assert d.pending() == {"v": 1, "digest": None, "outcome": "rejected", "code": 42,
                           "rejected": crc_name(body)}


def test_body_too_long_rejected_with_code_40_and_no_digest_of_it():
    d = Device()
    d.run()
    d.sim.body = b'{"a":"' + b"x" * 248 + b'"}'
    assert len(d.sim.body) == 256
    assert d.run() == provision.E_BODY_TOO_LONG
    assert d.pending() == {"v": 1, "digest": crc_name(REFERENCE_BODY), "outcome": "rejected",
                           "code": 40, "version": "2021-05-31"}


def test_link_failures_leave_no_report():
    d = Device(never_done=True)
    assert d.run() == provision.E_DEADLINE
    assert REPORT not in d.fs.files


class _NoRoomForReports:
    # the flash as the Applier sees it: writing the report fails (ENOSPC), the rest works
    def __init__(self, fs):
        self.fs = fs

    def open(self, path, mode):
        if "w" in mode and path.startswith(REPORT):
            raise OSError(28)
        return self.fs.open(path, mode)

    def rename(self, a, b):
        self.fs.rename(a, b)

    def remove(self, path):
        self.fs.remove(path)

    def exists(self, path):
        return self.fs.exists(path)


def test_report_flash_error_never_changes_the_result():
    d = Device()
    d.applier = _reporting(_NoRoomForReports(d.fs), d.logs)
    assert d.run() == provision.OK
    assert "report not stored" in "\n".join(d.logs)
    assert REPORT not in d.fs.files and d.fs.files["/ztp/config.json"] == REFERENCE_BODY


def test_without_reports_the_telemetry_option_still_goes():
    clock, sim, m, fs = make_rig()
    logs = []
    opt = provision.Options(backoff_ms=100, reg_deadline_ms=5000, telemetry=b'{"t":1}')
    p = provision.Provisioner(modem.Link(m, clock), fs, _applier(fs, logs), DEVICE_ID,
                              "/ztp/channel", opt, rng, logs.append)
    assert p.run() == provision.OK
    assert sim.telemetry == [b'{"t":1}']
    assert REPORT not in fs.files


# --- the schedule ---------------------------------------------------------------------------
def test_reprovision_delay_is_period_plus_minus_jitter():
    assert provision.reprovision_delay_ms(0, 10) == -1          # off
    assert provision.reprovision_delay_ms(-5, 10) == -1
    assert provision.reprovision_delay_ms(100, 0, rng) == 100000
    assert provision.reprovision_delay_ms(100, 10) == 100000     # no rng: no jitter
    # rng bytes 00 01 02 -> 258 % 21 = 6 -> -4 s
    assert provision.reprovision_delay_ms(100, 10, rng) == 96000

    def fixed(v):
        return lambda n: bytes([(v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF])
    seen = set()
    for v in range(0, 1 << 24, 99991):
        ms = provision.reprovision_delay_ms(86400, 8640, fixed(v))
        assert 77760000 <= ms <= 95040000 and ms % 1000 == 0
        seen.add(ms)
    assert len(seen) > 100
    # both ends are reached: r % 17281 = 0 -> -8640 s, 17280 -> +8640 s
    assert provision.reprovision_delay_ms(86400, 8640, fixed(0)) == 77760000
    assert provision.reprovision_delay_ms(86400, 8640, fixed(17280)) == 95040000
    assert provision.reprovision_delay_ms(86400, 8640, fixed(8640)) == 86400000


def test_reprovision_delay_caps():
    def top(n):
        return b"\xff" * n
    # period capped at 7 days, jitter at half the period: always a small int of ms
    assert provision.reprovision_delay_ms(10 ** 7, 0) == 604800000
    assert provision.reprovision_delay_ms(100, 1000, lambda n: b"\x00\x00\x00") == 50000
    for period in (1, 2, 3, 100, 604800, 10 ** 9):
        for r in (rng, top, lambda n: b"\x00" * n):
            ms = provision.reprovision_delay_ms(period, 10 ** 9, r)
            assert 500 <= ms <= 907200000 < (1 << 30)
