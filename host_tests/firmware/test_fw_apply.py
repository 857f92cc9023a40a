# lib/apply.py alone: atomic apply, rollback by boot counter, config.bad, recover() after an
# interrupted write, renames failing part-way, the settings handler; the report to the service
# (issue 17): config.digest, the report document, the pending report in flash, what the
# Applier says is in force (runs under pytest and MicroPython; whole runs with reports:
# test_fw_flow.py). (One file, not a new test_fw_report.py: the WASI runner traps when a
# twelfth test module is imported, see docs/firmware.md "Reporting what was applied".)
import json
import sys

import apply
import config
from fw_fakes import REFERENCE_BODY, FakePin, RamFs, make_rig, raises

ROOT = "/ztp"
CUR = ROOT + "/config.json"
PREV = ROOT + "/config.prev"
BAD = ROOT + "/config.bad"
TRIAL = ROOT + "/trial"
TMP = CUR + ".tmp"
ON = REFERENCE_BODY
OFF = REFERENCE_BODY.replace(b'"On"', b'"Off"')
DIM = REFERENCE_BODY.replace(b'"On"', b'"Dim"')       # valid JSON, the pin cannot do it


def rig(fs=None, pin=None, max_boots=3):
    fs = fs or RamFs()
    pin = pin or FakePin()
    logs = []
    a = apply.Applier(fs, ROOT, logs.append, max_boots)
    a.register("iot:Alarm", apply.PinHandler(pin))
    return a, fs, pin, logs


def do_apply(a, body):
    return a.apply(body, len(body), config.parse_config(body))


def boot(fs, pin, max_boots=3):
    # a fresh Applier (new boot) on the same flash and pin
    a, fs, pin, logs = rig(fs, pin, max_boots)
    cfg = a.boot(bytearray(255))
    return a, cfg, logs


def test_apply_then_prev_kept_trial_started():
    a, fs, pin, logs = rig()
    assert do_apply(a, ON) == apply.APPLIED
    assert fs.files[CUR] == ON and PREV not in fs.files and fs.files[TRIAL] == b"0"
    assert do_apply(a, OFF) == apply.APPLIED
    assert fs.files[CUR] == OFF and fs.files[PREV] == ON
    assert pin.history == [1, 0]
    assert do_apply(a, OFF) == apply.UNCHANGED
    assert pin.history == [1, 0]


def test_dry_run_failure_writes_nothing():
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    a.mark_good()
    before = dict(fs.files)
    e = raises(apply.ApplyError, do_apply, a, DIM)
    assert "iot:Alarm" in str(e) and "Dim" in str(e)
    assert fs.files == before and pin.history == [1]
    body = REFERENCE_BODY.replace(b"iot:Alarm", b"iot:Siren")
    e = raises(apply.ApplyError, do_apply, a, body)
    assert "no handler for action iot:Siren" in str(e)
    assert fs.files == before


def test_unconfirmed_config_rolled_back_after_3_boots():
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    a.mark_good()
    do_apply(a, OFF)                     # new config, never confirmed
    for n in (1, 2, 3):
        a, cfg, logs = boot(fs, pin)
        assert fs.files[CUR] == OFF and fs.files[TRIAL] == str(n).encode()
        assert cfg.actions == (("iot:Alarm", "Off"),)
    a, cfg, logs = boot(fs, pin)         # 4th start without mark_good(): roll back
    assert cfg.actions == (("iot:Alarm", "On"),)
    assert fs.files[CUR] == ON and fs.files[BAD] == OFF
    assert PREV not in fs.files and TRIAL not in fs.files
    assert pin.v == 1
    assert any("not confirmed after 3 boots" in line for line in logs)
    # the rolled-back body is never applied again; another one is
    e = raises(apply.ApplyError, do_apply, a, OFF)
    assert "rolled back before" in str(e)
    assert fs.files[CUR] == ON
    assert do_apply(a, ON) == apply.UNCHANGED


def test_mark_good_stops_the_counter():
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    do_apply(a, OFF)
    a, cfg, logs = boot(fs, pin)
    a.mark_good()
    assert TRIAL not in fs.files
    for _ in range(5):
        a, cfg, logs = boot(fs, pin)
    assert fs.files[CUR] == OFF and cfg.actions == (("iot:Alarm", "Off"),)


def test_max_boots_is_configurable():
    a, fs, pin, logs = rig(max_boots=1)
    do_apply(a, ON)
    do_apply(a, OFF)
    a, cfg, logs = boot(fs, pin, 1)
    assert fs.files[CUR] == OFF
    a, cfg, logs = boot(fs, pin, 1)
    assert fs.files[CUR] == ON


def test_unreadable_counter_rolls_back():
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    do_apply(a, OFF)
    fs.files[TRIAL] = b"x"
    a, cfg, logs = boot(fs, pin)
    assert fs.files[CUR] == ON


def test_stored_config_failing_at_start_is_rolled_back():
    # the stored body no longer applies (handler refuses it): roll back to config.prev
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    a.mark_good()
    fs.files[PREV] = ON
    fs.files[CUR] = DIM
    a, cfg, logs = boot(fs, pin)
    assert cfg.actions == (("iot:Alarm", "On"),)
    assert fs.files[CUR] == ON and fs.files[BAD] == DIM
    assert any("fails at start" in line for line in logs)
    e = raises(apply.ApplyError, do_apply, a, DIM)
    assert "rolled back before" in str(e)


def test_stored_config_unparseable_and_no_prev():
    for junk in (b"{not json", b"\xff" * 300):
        fs = RamFs()
        fs.files[CUR] = junk
        a, cfg, logs = boot(fs, FakePin())
        assert cfg is None
        assert CUR not in fs.files and fs.files[BAD] == junk


def test_both_stored_configs_failing():
    fs = RamFs()
    fs.files[CUR] = DIM
    fs.files[PREV] = b"[]"
    a, cfg, logs = boot(fs, FakePin())
    assert cfg is None and CUR not in fs.files and PREV not in fs.files


def test_boot_with_nothing_stored():
    a, cfg, logs = boot(RamFs(), FakePin())
    assert cfg is None


def test_recover_after_crash_between_renames():
    # crash after config.json -> config.prev, before the new config.json: the old one is back
    fs = RamFs()
    fs.files[PREV] = ON
    fs.files[TMP] = OFF[0:10]            # half-written temp file
    a, fs, pin, logs = rig(fs)
    a.recover()
    assert fs.files == {CUR: ON}
    a.recover()                           # idempotent
    assert fs.files == {CUR: ON}


def test_recover_leaves_a_complete_state_alone():
    fs = RamFs()
    fs.files[CUR] = OFF
    fs.files[PREV] = ON
    a, fs, pin, logs = rig(fs)
    a.recover()
    assert fs.files == {CUR: OFF, PREV: ON}


def test_write_failing_part_way_keeps_old_config():
    for fail_after in (0, 1, 10, len(OFF) - 1):
        a, fs, pin, logs = rig()
        do_apply(a, ON)
        a.mark_good()
        fs.fail_after = fail_after
        e = raises(apply.ApplyError, do_apply, a, OFF)
        fs.fail_after = None
        assert "old one kept" in str(e)
        assert fs.files == {CUR: ON}, (fail_after, fs.files)
        assert pin.history == [1]


def test_rename_failing_part_way_keeps_old_config():
    # renames of one apply: config.json -> config.prev, tmp -> config.json, trial tmp -> trial.
    # Whichever fails (and the undo's own rename after it), the old configuration stays in
    # force, apply() raises ApplyError (not OSError), and the next boot is clean.
    for ok_renames in (0, 1, 2):
        for undo_fails in (False, True):
            a, fs, pin, logs = rig()
            do_apply(a, ON)
            a.mark_good()
            fs.fail_rename = ok_renames
            if not undo_fails:
                # let the undo's rename through: fail only the one at ok_renames
                orig = fs.rename
                count = [0]

                def rename(x, y, orig=orig, count=count, n=ok_renames, fs=fs):
                    count[0] += 1
                    if count[0] == n + 1:
                        raise OSError(5)
                    fs.fail_rename = None
                    return orig(x, y)
                fs.rename = rename
            e = raises(apply.ApplyError, do_apply, a, OFF)
            assert "old one kept" in str(e)
            fs.fail_rename = None
            if not undo_fails:
                fs.rename = orig
                assert fs.files.get(CUR) == ON, (ok_renames, fs.files)
            a, cfg, logs = boot(fs, pin)
            assert fs.files[CUR] == ON, (ok_renames, undo_fails, fs.files)
            assert cfg.actions == (("iot:Alarm", "On"),)
            assert TMP not in fs.files and TRIAL not in fs.files
            assert BAD not in fs.files


def test_first_config_write_failing_leaves_nothing():
    a, fs, pin, logs = rig()
    fs.fail_rename = 1                    # config written, trial rename fails
    raises(apply.ApplyError, do_apply, a, ON)
    fs.fail_rename = None
    assert fs.files == {}
    assert pin.history == []


def test_commit_failure_rolls_back_and_recommits_previous():
    # a handler that passes the dry run but fails on commit, after another action was
    # committed: files rolled back, and the previous configuration committed again
    a, fs, pin, logs = rig()
    calls = []

    def flaky(effect, commit):
        calls.append((effect, commit))
        if commit and effect == "Boom":
            raise OSError(5)
    a.register("iot:Fan", flaky)
    one = (b'{"configuration":{"config":[{"action":"iot:Alarm","effect":"On"},'
           b'{"action":"iot:Fan","effect":"Slow"}]}}')
    two = (b'{"configuration":{"config":[{"action":"iot:Alarm","effect":"Off"},'
           b'{"action":"iot:Fan","effect":"Boom"}]}}')
    do_apply(a, one)
    a.mark_good()
    e = raises(apply.ApplyError, do_apply, a, two)
    assert "applying failed" in str(e)
    assert fs.files[CUR] == one and fs.files[BAD] == two
    assert pin.history == [1, 0, 1]       # half of `two` undone by re-committing `one`
    assert calls[-1] == ("Slow", True)


def test_settings_handler():
    a, fs, pin, logs = rig()
    got = []

    def settings(d, commit):
        if d.get("interval_s", 1) <= 0:
            raise ValueError("interval_s must be > 0")
        got.append((commit, d))
    a.settings_handler = settings
    body = b'{"interval_s":60,"apn":"iot"}'
    assert do_apply(a, body) == apply.APPLIED
    assert got == [(False, {"interval_s": 60, "apn": "iot"}),
                   (True, {"interval_s": 60, "apn": "iot"})]
    e = raises(apply.ApplyError, do_apply, a, b'{"interval_s":0}')
    assert "settings: interval_s must be > 0" in str(e)
    assert fs.files[CUR] == body and len(got) == 2
    # at boot the stored settings go to the handler again
    a, fs, pin, logs = rig(fs)
    a.settings_handler = settings
    cfg = a.boot(bytearray(255))
    assert cfg.settings == {"interval_s": 60, "apn": "iot"}
    assert got[-1] == (True, {"interval_s": 60, "apn": "iot"})


def test_settings_without_handler_are_rejected():
    # no settings handler registered: nobody would use them, so they are not stored as if
    # applied (the same rule as an action without a handler); the old configuration stays
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    e = raises(apply.ApplyError, do_apply, a, b'{"apn":"iot"}')
    assert str(e) == "no handler for settings"
    assert fs.files[CUR] == ON and PREV not in fs.files


def test_stored_settings_without_handler_roll_back_at_boot():
    # settings stored by a firmware that had a settings handler, booted by one that has none
    a, fs, pin, logs = rig()
    a.settings_handler = lambda d, commit: None
    do_apply(a, ON)
    a.mark_good()
    do_apply(a, b'{"apn":"iot"}')
    a, fs, pin, logs = rig(fs)
    cfg = a.boot(bytearray(255))
    assert cfg.actions == (("iot:Alarm", "On"),)
    assert fs.files[CUR] == ON and fs.files[BAD] == b'{"apn":"iot"}'
    assert any("no handler for settings" in m for m in logs)


def test_same_as_compares_bytes_not_versions():
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    assert a.same_as(CUR, ON, len(ON))
    assert not a.same_as(CUR, ON + b" ", len(ON) + 1)
    assert not a.same_as(CUR, ON, len(ON) - 1)
    assert not a.same_as(CUR, OFF, len(OFF))
    assert not a.same_as(BAD, ON, len(ON))
    spaced = ON.replace(b"\"config\":", b"\"config\": ")
    assert do_apply(a, spaced) == apply.APPLIED   # same version, different bytes


def test_boot_survives_flash_errors():
    # boot() never raises: the application must start even when flash fails
    a, fs, pin, logs = rig()
    do_apply(a, ON)
    do_apply(a, OFF)
    fs.fail_after = 0
    fs.fail_rename = 0
    a, cfg, logs = boot(fs, pin)
    assert cfg is not None and cfg.actions == (("iot:Alarm", "Off"),)
    assert any("flash error" in line for line in logs)
    fs.fail_after = None
    fs.fail_rename = None
    fs.files[TRIAL] = b"3"
    fs.fail_rename = 0
    a, cfg, logs = boot(fs, pin)          # rollback wanted, rename fails: still starts
    fs.fail_rename = None


# === the report to the service (issue 17) ==========================================
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


if sys.implementation.name == "micropython":
    # no zlib.crc32 there: the stdlib's values come in ALL_LENGTHS_DIGEST. (Not a try/except
    # ImportError: an import failing inside a try block can trap the WASI runtime.)
    _stdlib_crc32 = None
else:
    from zlib import crc32 as _stdlib_crc32   # what the service computes (Python's stdlib)


def crc_name(body):
    return "crc32:%08x" % (_stdlib_crc32 or _crc32_reference)(body)


def _lcg_bytes(n):
    # n pseudo-random bytes (an LCG: no random module, the same on every runtime)
    x = 12345
    b = bytearray(n)
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = (x >> 16) & 0xFF
    return b


# config.digest of every "crc32:%08x" % zlib.crc32(_lcg_bytes(254)[:n]) for n = 0..254, joined
# (computed with CPython's zlib): lets MicroPython check all 255 lengths against the stdlib's
# values without zlib and without a 255-entry table
ALL_LENGTHS_DIGEST = "crc32:a8a0743b"


def _applier(fs, logs):
    a = apply.Applier(fs, "/ztp", logs.append)
    a.register("iot:Alarm", apply.PinHandler(FakePin()))
    return a


# --- the digest ---------------------------------------------------------------------------
def test_digest_is_zlib_crc32_for_every_length_0_to_254():
    body = _lcg_bytes(254)
    names = []
    for n in range(255):
        d = config.digest(body, n)          # only body[:n] counts
        if _stdlib_crc32 is not None:
            assert d == "crc32:%08x" % _stdlib_crc32(bytes(body[0:n])), n
        names.append(d)
    joined = "".join(names).encode()
    assert config.digest(joined, len(joined)) == ALL_LENGTHS_DIGEST


def test_digest_check_values():
    assert config.digest(b"123456789", 9) == "crc32:cbf43926"
    assert _crc32_reference(b"123456789") == 0xCBF43926
    assert config.digest(b"", 0) == "crc32:00000000"
    assert config.digest(REFERENCE_BODY, len(REFERENCE_BODY)) == crc_name(REFERENCE_BODY)
    every = bytes(range(256))
    assert config.digest(every, 256) == "crc32:29058c73"


# --- the document ---------------------------------------------------------------------------
def test_report_document_for_each_outcome():
    d = "crc32:1a2b3c4d"
    assert apply.build_report("applied", 0, d, "2021-05-31") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,'
        b'"version":"2021-05-31"}')
    assert apply.build_report("unchanged", 1, d) == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"unchanged","code":1}')
    assert apply.build_report("rejected", 41, d, "v2", "crc32:00ff00ff") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"rejected","code":41,'
        b'"rejected":"crc32:00ff00ff","version":"v2"}')
    assert apply.build_report("rejected", 40, None) == (
        b'{"v":1,"digest":null,"outcome":"rejected","code":40}')
    assert apply.build_report("rolled_back", 0, d, "a") == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"rolled_back","code":0,"version":"a"}')
    assert apply.build_report("confirmed", 0, d) == (
        b'{"v":1,"digest":"crc32:1a2b3c4d","outcome":"confirmed","code":0}')


def test_report_fits_in_one_telemetry_apdu():
    longest = 0
    for outcome in ("applied", "unchanged", "rejected", "rolled_back",
                    "confirmed"):
        doc = apply.build_report(outcome, 42, "crc32:ffffffff", "~" * 32, "crc32:ffffffff")
        obj = json.loads(doc)
        assert obj["outcome"] == outcome and obj["version"] == "~" * 32
        longest = max(longest, len(doc))
    assert longest == 140
    assert longest <= 160 <= 255


def test_a_version_that_would_need_an_escape_is_left_out():
    for v in ('a"b', "a\\b", "caf\u00e9", "tab\t", "\x7f", "x" * 33, ""):
        doc = apply.build_report("applied", 0, "crc32:00000000", v)
        obj = json.loads(doc)
        assert "version" not in obj, v
    punctuation = " !#$%&'()*+,-./:;<=>?@[]^_`{|}~"
    doc = apply.build_report("applied", 0, None, punctuation)
    assert json.loads(doc)["version"] == punctuation


# --- the pending report in flash ------------------------------------------------------------
def _reporting(fs, logs):
    a = apply.Applier(fs, "/ztp", logs.append, reports=True)
    a.register("iot:Alarm", apply.PinHandler(FakePin()))
    return a


def test_pending_report_store_load_drop():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _reporting(fs, logs)
    assert a.pending_report() is None
    a.store_report("rejected", 40)
    first = b'{"v":1,"digest":null,"outcome":"rejected","code":40}'
    assert a.pending_report() == first == fs.files[REPORT]
    assert REPORT + ".tmp" not in fs.files
    a.apply(REFERENCE_BODY, len(REFERENCE_BODY), config.parse_config(REFERENCE_BODY))
    a.store_report("unchanged", 1, None, True)      # if_none: the pending one stays
    assert a.pending_report() == first
    a.store_report("applied", 0)                    # the newest wins
    assert a.pending_report() == apply.build_report("applied", 0, crc_name(REFERENCE_BODY),
                                                    "2021-05-31")
    a.drop_report()
    assert a.pending_report() is None and REPORT not in fs.files
    a.drop_report()                                 # nothing to drop: no error
    a.store_report("unchanged", 1, None, True)      # none pending: stored
    assert json.loads(a.pending_report())["outcome"] == "unchanged"
    # what it wrote is kept: no file object or read buffer for the run that sends it
    opened = []
    real_open = fs.open

    def counting_open(path, mode):
        opened.append(path)
        return real_open(path, mode)
    fs.open = counting_open
    assert json.loads(a.pending_report())["outcome"] == "unchanged"
    assert opened == []
    # a power-up reads it from flash
    assert _reporting(fs, logs).pending_report() == fs.files[REPORT]
    assert opened == [REPORT]


def test_without_reports_nothing_is_stored():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _applier(fs, logs)
    a.apply(REFERENCE_BODY, len(REFERENCE_BODY), config.parse_config(REFERENCE_BODY))
    a.store_report("applied", 0)
    assert a.mark_good() is True
    assert a.pending_report() is None and REPORT not in fs.files
    a.drop_report()


def test_mark_good_stores_confirmed_only_for_a_configuration_on_trial():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _reporting(fs, logs)
    a.apply(REFERENCE_BODY, len(REFERENCE_BODY), config.parse_config(REFERENCE_BODY))
    a.drop_report()
    assert a.mark_good() is True
    assert json.loads(fs.files[REPORT]) == {"v": 1, "digest": crc_name(REFERENCE_BODY),
                                            "outcome": "confirmed", "code": 0,
                                            "version": "2021-05-31"}
    a.drop_report()
    assert a.mark_good() is False                   # nothing on trial: nothing to say
    assert REPORT not in fs.files


def test_a_damaged_pending_report_is_dropped():
    clock, sim, m, fs = make_rig()
    logs = []
    for bad in (b"", b"garbage", b"{" + b" " * 160):
        fs.files[REPORT] = bad
        a = _reporting(fs, logs)                    # a power-up finds it
        assert a.pending_report() is None
        assert REPORT not in fs.files
    assert "pending report dropped" in "\n".join(logs)


def test_a_flash_error_while_storing_is_logged_and_the_old_report_kept():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _reporting(fs, logs)
    a.store_report("rejected", 41)
    old = fs.files[REPORT]
    fs.fail_after = 3
    a.store_report("rejected", 42)
    fs.fail_after = None
    assert a.pending_report() == old
    assert REPORT + ".tmp" not in fs.files
    assert "report not stored" in "\n".join(logs)


# --- what the Applier says is in force ---------------------------------------------------------
OTHER_BODY = (b'{"configuration":{"version":"2021-06-01","config":'
              b'[{"action":"iot:Alarm","effect":"Off"}]}}')


def test_applier_digest_and_version_follow_the_configuration_in_force():
    clock, sim, m, fs = make_rig()
    logs = []
    a = _applier(fs, logs)
    assert a.boot(bytearray(255)) is None
    assert a.digest is None and a.version is None
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


def test_rollback_at_boot_is_the_pending_report_naming_the_previous_configuration():
    rolled_back = {"v": 1, "digest": crc_name(REFERENCE_BODY), "outcome": "rolled_back",
                   "code": 0, "version": "2021-05-31"}
    clock, sim, m, fs = make_rig()
    logs = []
    fs.files["/ztp/config.prev"] = REFERENCE_BODY
    fs.files["/ztp/config.json"] = OTHER_BODY
    fs.files["/ztp/trial"] = b"3"
    a = _reporting(fs, logs)
    a.boot(bytearray(255))
    assert a.digest == crc_name(REFERENCE_BODY) and a.version == "2021-05-31"
    assert json.loads(fs.files[REPORT]) == rolled_back
    # a stored configuration that fails at start is rolled back too
    fs.files.pop(REPORT)
    fs.files["/ztp/config.prev"] = REFERENCE_BODY
    fs.files["/ztp/config.json"] = b'{"configuration":{"config":[{"action":"x:Y","effect":"On"}]}}'
    a = _reporting(fs, logs)
    a.boot(bytearray(255))
    assert a.digest == crc_name(REFERENCE_BODY)
    assert json.loads(fs.files[REPORT]) == rolled_back
    # a boot with nothing to roll back says nothing
    fs.files.pop(REPORT)
    _reporting(fs, logs).boot(bytearray(255))
    assert REPORT not in fs.files
    # rolled back to nothing: the digest is null
    fs.files["/ztp/config.json"] = OTHER_BODY
    fs.files.pop("/ztp/config.prev", None)
    fs.files["/ztp/trial"] = b"3"
    fs.files.pop("/ztp/config.bad", None)
    a = _reporting(fs, logs)
    assert a.boot(bytearray(255)) is None
    assert json.loads(fs.files[REPORT]) == {"v": 1, "digest": None, "outcome": "rolled_back",
                                            "code": 0}


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
