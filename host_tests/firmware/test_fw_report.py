# The report to the service (issue 17): the digest, the report document for each outcome, the
# pending report in flash, its delivery before CA 00, and the re-provisioning schedule. Runs
# under pytest and MicroPython (no f-strings).
import json

import apply
import config
import modem
import provision
import report
from fw_fakes import REFERENCE_BODY, FakePin, make_rig, rng

DEVICE_ID = bytes(range(16))
REPORT = "/ztp/report.json"


def _crc32_reference(data):
    # CRC-32/ISO-HDLC the textbook way (plain ints): the check value of "123456789" is
    # CBF43926 (Greg Cook's CRC catalogue, "CRC-32/ISO-HDLC")
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


try:
    from zlib import crc32 as _stdlib_crc32   # what the service computes (Python's stdlib)
except ImportError:                            # MicroPython builds without zlib.crc32
    _stdlib_crc32 = _crc32_reference


def crc_name(body):
    return "crc32:%08x" % _stdlib_crc32(body)


def _bodies():
    # bodies of every length 0-254, every byte value in them (a simple LCG, no random module)
    x = 12345
    out = []
    for n in range(255):
        b = bytearray(n)
        for i in range(n):
            x = (x * 1103515245 + 12345) & 0x7FFFFFFF
            b[i] = (x >> 16) & 0xFF
        out.append(bytes(b))
    return out


# --- the digest ---------------------------------------------------------------------------
def test_digest_is_zlib_crc32_for_every_length_0_to_254():
    for body in _bodies():
        assert config.digest(body, len(body)) == crc_name(body), len(body)
        # a body in a larger buffer: only body[:n] counts
        buf = bytearray(body + b"\xff" * 7)
        assert config.digest(buf, len(body)) == crc_name(body)


def test_digest_check_values():
    assert config.digest(b"123456789", 9) == "crc32:cbf43926"
    assert _crc32_reference(b"123456789") == 0xCBF43926
    assert config.digest(b"", 0) == "crc32:00000000"
    assert config.digest(REFERENCE_BODY, len(REFERENCE_BODY)) == crc_name(REFERENCE_BODY)
    every = bytes(range(256))
    assert config.digest(every, 256) == crc_name(every)


# --- the document ---------------------------------------------------------------------------
def test_report_document_for_each_outcome():
    d = "crc32:1a2b3c4d"
    assert report.build_report(report.APPLIED, 0, d, "2021-05-31") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,'
        b'"version":"2021-05-31"}')
    assert report.build_report(report.UNCHANGED, 1, d) == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"unchanged","code":1}')
    assert report.build_report(report.REJECTED, 41, d, "v2", "crc32:00ff00ff") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"rejected","code":41,'
        b'"rejected":"crc32:00ff00ff","version":"v2"}')
    assert report.build_report(report.REJECTED, 40, None) == (
        b'{"v":1,"digest":null,"outcome":"rejected","code":40}')
    assert report.build_report(report.ROLLED_BACK, 0, d, "a") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"rolled_back","code":0,"version":"a"}')
    assert report.build_report(report.CONFIRMED, 0, d) == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"confirmed","code":0}')


def test_report_fits_in_one_telemetry_apdu():
    longest = 0
    for outcome in (report.APPLIED, report.UNCHANGED, report.REJECTED, report.ROLLED_BACK,
                    report.CONFIRMED):
        doc = report.build_report(outcome, 42, "crc32:ffffffff", "~" * 32, "crc32:ffffffff")
        obj = json.loads(doc)
        assert obj["outcome"] == outcome and obj["version"] == "~" * 32
        longest = max(longest, len(doc))
    assert longest == 140
    assert longest <= report.MAX_REPORT <= 255


def test_a_version_that_would_need_an_escape_is_left_out():
    for v in ('a"b', "a\\b", "caf\u00e9", "tab\t", "\x7f", "x" * 33, ""):
        doc = report.build_report(report.APPLIED, 0, "crc32:00000000", v)
        obj = json.loads(doc)
        assert "version" not in obj, v
    punctuation = " !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
    doc = report.build_report(report.APPLIED, 0, None, punctuation)
    assert json.loads(doc)["version"] == punctuation


# --- the pending report in flash ------------------------------------------------------------
def test_pending_report_store_load_remove():
    clock, sim, m, fs = make_rig()
    logs = []
    r = report.Reports(fs, REPORT, logs.append)
    assert not r.pending() and r.load() is None
    r.store(b'{"v":1}')
    assert r.pending() and r.load() == b'{"v":1}'
    assert REPORT + ".tmp" not in fs.files
    r.store(b'{"v":1,"x":2}')                       # the newest wins
    assert r.load() == b'{"v":1,"x":2}'
    r.remove()
    assert not r.pending() and r.load() is None
    r.remove()                                      # nothing to remove: no error


def test_a_damaged_pending_report_is_dropped():
    clock, sim, m, fs = make_rig()
    logs = []
    r = report.Reports(fs, REPORT, logs.append)
    for bad in (b"", b"garbage", b"{" + b" " * report.MAX_REPORT):
        fs.files[REPORT] = bad
        assert r.load() is None
        assert REPORT not in fs.files
    assert "pending report dropped" in "\n".join(logs)


def test_a_flash_error_while_storing_is_logged_and_the_old_report_kept():
    clock, sim, m, fs = make_rig()
    logs = []
    r = report.Reports(fs, REPORT, logs.append)
    r.store(b'{"old":1}')
    fs.fail_after = 3
    r.store(b'{"new":1}')
    fs.fail_after = None
    assert r.load() == b'{"old":1}'
    assert REPORT + ".tmp" not in fs.files
    assert "report not stored" in "\n".join(logs)


# --- what the Applier says is in force ---------------------------------------------------------
def _applier(fs, logs):
    a = apply.Applier(fs, "/ztp", logs.append)
    a.register("iot:Alarm", apply.PinHandler(FakePin()))
    return a


OTHER_BODY = (b'{"configuration":{"version":"2021-06-01","config":'
              b'[{"action":"iot:Alarm","effect":"Off"}]}}')


def test_applier_digest_and_version_follow_the_configuration_in_force():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _applier(fs, logs)
    assert a.boot(bytearray(255)) is None
    assert a.digest is None and a.version is None and not a.rolled_back
    a.apply(REFERENCE_BODY, len(REFERENCE_BODY), config.parse_config(REFERENCE_BODY))
    assert a.digest == crc_name(REFERENCE_BODY) and a.version == "2021-05-31"
    assert a.mark_good() is True
    assert a.mark_good() is False                   # nothing on trial any more
    a.apply(OTHER_BODY, len(OTHER_BODY), config.parse_config(OTHER_BODY))
    assert a.digest == crc_name(OTHER_BODY) and a.version == "2021-06-01"
    # a later power-up: loaded from flash
    b = _applier(fs, logs)
    b.boot(bytearray(255))
    assert b.digest == crc_name(OTHER_BODY) and b.version == "2021-06-01"


def test_applier_rolled_back_at_boot_names_the_previous_configuration():
    clock, sim, m, fs = make_rig()
    logs = []
    fs.files["/ztp/config.prev"] = REFERENCE_BODY
    fs.files["/ztp/config.json"] = OTHER_BODY
    fs.files["/ztp/trial"] = b"3"
    a = _applier(fs, logs)
    a.boot(bytearray(255))
    assert a.rolled_back
    assert a.digest == crc_name(REFERENCE_BODY) and a.version == "2021-05-31"
    # a stored configuration that fails at start is rolled back too
    fs.files["/ztp/config.prev"] = REFERENCE_BODY
    fs.files["/ztp/config.json"] = b'{"configuration":{"config":[{"action":"x:Y","effect":"On"}]}}'
    a = _applier(fs, logs)
    a.boot(bytearray(255))
    assert a.rolled_back and a.digest == crc_name(REFERENCE_BODY)


def test_applier_commit_failing_names_the_configuration_put_back():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _applier(fs, logs)
    a.apply(REFERENCE_BODY, len(REFERENCE_BODY), config.parse_config(REFERENCE_BODY))

    def fails_on_commit(effect, commit):
        if commit and effect == "Off":
            raise ValueError("relay stuck")
    a.register("iot:Alarm", fails_on_commit)
    raised = False
    try:
        a.apply(OTHER_BODY, len(OTHER_BODY), config.parse_config(OTHER_BODY))
    except apply.ApplyError:
        raised = True
    assert raised
    assert fs.files["/ztp/config.json"] == REFERENCE_BODY
    assert a.digest == crc_name(REFERENCE_BODY) and a.version == "2021-05-31"


# --- provisioning runs with reports --------------------------------------------------------------
class Device:
    # one device across provisioning runs (flash, applier, reports kept; a fresh Provisioner
    # per run, as lib/ztpmain.py makes one)
    def __init__(self, body=REFERENCE_BODY, **sim_kw):
        self.clock, self.sim, self.modem, self.fs = make_rig(body, **sim_kw)
        self.logs = []
        self.applier = _applier(self.fs, self.logs)
        self.reports = report.Reports(self.fs, REPORT, self.logs.append)

    def run(self):
        opt = provision.Options(backoff_ms=100, poll_deadline_ms=60000, reg_deadline_ms=5000,
                                attempts=1)
        self.prov = provision.Provisioner(modem.Link(self.modem, self.clock), self.fs,
                                          self.applier, DEVICE_ID, "/ztp/channel", opt, rng,
                                          self.logs.append, None, self.reports)
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
    assert d.fs.files[REPORT] == report.build_report(
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


class _FullFs:
    # the file system as the report sees it: every write fails (ENOSPC)
    def __init__(self, fs):
        self.fs = fs

    def open(self, path, mode):
        if "w" in mode:
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
    d.reports = report.Reports(_FullFs(d.fs), REPORT, d.logs.append)
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
    for v in range(0, 1 << 24, 9973):
        ms = provision.reprovision_delay_ms(86400, 8640, fixed(v))
        assert 77760000 <= ms <= 95040000 and ms % 1000 == 0
        seen.add(ms)
    assert len(seen) > 1000
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
