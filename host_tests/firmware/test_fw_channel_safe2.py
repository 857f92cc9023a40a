# lib/channel.py and lib/safe2.py alone, over the fake modem with a scripted card (runs under
# pytest and MicroPython).
import apdu
import channel
import modem
import safe2
from fw_fakes import FakeClock, FakeModem, RamFs, ScriptSim, raises, tohex, unhex

PATH = "/ztp/channel"


def rig(*answers):
    clock = FakeClock(1000)
    sim = ScriptSim(*answers)
    m = FakeModem(clock, sim)
    a = apdu.Apdu(modem.Link(m, clock))
    fs = RamFs()
    logs = []
    return channel.Channels(a, fs, PATH, logs.append), sim, fs, logs


def test_open_remembers_channel_select_close_forgets():
    ch, sim, fs, logs = rig(unhex("02 9000"), unhex("9000"), unhex("9000"))
    assert ch.open() == 2
    assert fs.files[PATH] == b"2"
    ch.select(channel.SAFE2_AID)
    ch.close()
    assert sim.log == ["0070000001", "02A4040C0C" + tohex(channel.SAFE2_AID), "0070800200"]
    assert PATH not in fs.files and ch.open_channel == 0
    ch.close()                         # nothing open: no APDU
    assert len(sim.log) == 3


def test_select_on_channel_5_uses_extended_cla():
    ch, sim, fs, logs = rig(unhex("05 9000"), unhex("9000"))
    ch.open()
    ch.select(channel.SAFE2_AID)
    assert sim.log[1].startswith("41A4040C")


def test_select_61xx_answered_by_get_response():
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("6112"), bytes(18) + b"\x90\x00")
    ch.open()
    ch.select(channel.SAFE2_AID)
    assert sim.log[2] == "01C0000012"


def test_no_free_channel_6881_and_6A81():
    for sw in ("6881", "6A81"):
        ch, sim, fs, logs = rig(unhex(sw))
        e = raises(channel.NoFreeChannel, ch.open)
        assert e.sw == int(sw, 16) and sw in str(e)
        assert PATH not in fs.files and ch.open_channel == 0


def test_open_rejects_other_sw_and_bad_answers():
    for answer, why in (("6985", "got 6985"), ("9000", "got 0 bytes"), ("00 9000", "1 byte"),
                        ("14 9000", "channel 1-19"), ("01 02 9000", "got 2 bytes")):
        ch, sim, fs, logs = rig(unhex(answer))
        e = raises(apdu.ApduError, ch.open)
        assert why in str(e), (answer, str(e))
        assert ch.open_channel == 0


def test_select_applet_missing_and_other_sw():
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("6A82"))
    ch.open()
    e = raises(channel.AppletMissing, ch.select, channel.SAFE2_AID)
    assert "6A82" in str(e)
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("6999"))
    ch.open()
    e = raises(apdu.ApduError, ch.select, channel.SAFE2_AID)
    assert "expected SW 9000, got 6999" in str(e)


def test_close_refused_by_card_still_forgets():
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("6881"))
    ch.open()
    ch.close()
    assert PATH not in fs.files and ch.open_channel == 0
    assert any("6881" in line for line in logs)


def test_close_refused_otherwise_stays_remembered_and_the_next_boot_retries_once():
    # before: forgotten whatever the close answered, so a channel the card kept open was
    # never closed again (three such runs and no channel is free)
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("6985"))
    ch.open()
    ch.close()
    assert fs.files[PATH] == b"1" and ch.open_channel == 0
    ch2, sim2, fs2, logs2 = rig(unhex("6985"))
    fs2.files[PATH] = b"1"
    ch2.close_stale()                  # the retry at boot: forgotten whatever it answers
    assert sim2.log == ["0070800100"] and PATH not in fs2.files


def test_close_failing_on_the_link_keeps_it_remembered():
    ch, sim, fs, logs = rig(unhex("01 9000"))
    ch.open()
    ch.apdu.link.uart.silent = True
    raises(modem.ModemTimeout, ch.close)
    assert fs.files[PATH] == b"1"       # closed at the next boot
    assert ch.open_channel == 0


def test_close_stale():
    ch, sim, fs, logs = rig(unhex("9000"))
    fs.files[PATH] = b"3"
    ch.close_stale()
    assert sim.log == ["0070800300"] and PATH not in fs.files
    for junk in (b"25", b"x", b"", b"0", b"123456789"):
        ch, sim, fs, logs = rig()
        fs.files[PATH] = junk
        ch.close_stale()                 # no APDU, file dropped
        assert sim.log == [] and PATH not in fs.files, junk
    ch, sim, fs, logs = rig()
    ch.close_stale()                     # nothing remembered: nothing done
    assert sim.log == []


def test_open_when_flash_fails_still_returns_the_channel():
    # a flash error remembering the number must not leave the channel open and unknown:
    # open() returns it, so the caller's finally closes it (before the fix: OSError escaped
    # Provisioner.run())
    ch, sim, fs, logs = rig(unhex("01 9000"), unhex("9000"))
    fs.fail_after = 0
    assert ch.open() == 1
    fs.fail_after = None
    assert PATH not in fs.files and (PATH + ".tmp") not in fs.files
    assert any("cannot remember" in line for line in logs)
    ch.close()
    assert sim.log[-1] == "0070800100"


# --- SAFE2 ---------------------------------------------------------------------------------
def s2rig(*answers, ch=1):
    c, sim, fs, logs = rig(*answers)
    return safe2.Safe2(c.apdu, ch), sim


def test_safe2_commands_bytes():
    s, sim = s2rig(unhex("9000"), unhex("9000"), unhex("9000"))
    s.set_device_id(bytes(range(16)))
    s.send_telemetry(b'{"t":1}')
    s.start_request()
    assert sim.log == ["01DA02C010" + tohex(bytes(range(16))),
                       "01DA02C107" + tohex(b'{"t":1}'), "01CA000000"]
    raises(ValueError, s.set_device_id, b"")
    raises(ValueError, s.set_device_id, bytes(256))
    raises(ValueError, s.send_telemetry, b"")


def test_safe2_cla_on_channel_4():
    s, sim = s2rig(unhex("9000"), ch=4)
    s.start_request()
    assert sim.log == ["40CA000000"]


def test_safe2_poll_status():
    s, sim = s2rig(unhex("6104"), unhex("0007 0000 9000"), unhex("0001 0000 9000"),
                   unhex("000F 0194 9110"))
    assert s.poll_status() == (0x0007, 0)
    assert sim.log == ["01CC020000", "01C0000004"]
    assert s.poll_status() == (0x0001, 0)
    assert s.poll_status() == (safe2.STATUS_ERROR, 0x0194)


def test_safe2_poll_status_bad_answers():
    s, sim = s2rig(unhex("00 07 9000"))
    e = raises(safe2.Safe2Error, s.poll_status)
    assert "expected 4 bytes, got 2" in str(e)
    s, sim = s2rig(unhex("6985"))
    e = raises(safe2.Safe2Error, s.poll_status)
    assert "STATUS: expected SW 9000, got 6985" in str(e) and e.sw == 0x6985


def test_safe2_errors_name_the_step():
    for fn, args, what in ((safe2.Safe2.set_device_id, (b"\x01",), "SET DEVICEID"),
                           (safe2.Safe2.send_telemetry, (b"\x01",), "TELEMETRY"),
                           (safe2.Safe2.start_request, (), "START REQUEST"),
                           (safe2.Safe2.read_config, (), "READ CONFIG")):
        s, sim = s2rig(unhex("6A80"))
        e = raises(safe2.Safe2Error, fn, s, *args)
        assert what + ": expected SW 9000, got 6A80" in str(e)


def test_safe2_read_config_sizes():
    # GET RESPONSE reads at most 128 bytes at a time; the card says 61xx for the rest
    s, sim = s2rig(unhex("61FF"), b"x" * 128 + b"\x61\x7F", b"x" * 127 + b"\x90\x00")
    assert s.read_config() == 255
    assert bytes(s.apdu.rsp[0:255]) == b"x" * 255
    assert sim.log[1:] == ["01C0000080", "01C000007F"]
    s, sim = s2rig(unhex("6100"), b"x" * 128 + b"\x61\x80", b"x" * 128 + b"\x90\x00")
    e = raises(safe2.BodyTooLong, s.read_config)
    assert "256 bytes" in str(e)
    s, sim = s2rig(unhex("6100"), b"x" * 128 + b"\x61\x80", b"x" * 128 + b"\x61\x10")
    raises(safe2.BodyTooLong, s.read_config)
    s, sim = s2rig(unhex("6100"), b"x" * 128 + b"\x61\x7A", b"x" * 122 + b"\x61\x10",
                   b"y" * 16 + b"\x90\x00")
    raises(safe2.BodyTooLong, s.read_config)
    # a body delivered in two pieces that together fit is accepted
    s, sim = s2rig(unhex("6180"), b"a" * 128 + b"\x61\x7F", b"b" * 127 + b"\x90\x00")
    assert s.read_config() == 255
    s, sim = s2rig(unhex("9000"))
    assert s.read_config() == 0
