# lib/apdu.py alone: AT+CSIM build/parse and every status-word path, over the fake modem with
# a scripted card (runs under pytest and MicroPython).
import apdu
import modem
from fw_fakes import FakeClock, FakeModem, ScriptSim, raises, unhex


def rig(*answers):
    clock = FakeClock(1000)
    sim = ScriptSim(*answers)
    m = FakeModem(clock, sim)
    a = apdu.Apdu(modem.Link(m, clock))
    return a, sim, m, clock


def test_cla_for_channels_0_to_19():
    assert [apdu.cla_for_channel(n) for n in range(4)] == [0, 1, 2, 3]
    for n in range(4, 20):
        assert apdu.cla_for_channel(n) == 0x40 | (n - 4)
    assert apdu.cla_for_channel(19) == 0x4F
    raises(ValueError, apdu.cla_for_channel, 20)
    raises(ValueError, apdu.cla_for_channel, -1)


def test_case_1_to_4_encoding():
    a, sim, m, clock = rig(unhex("9000"), unhex("9000"), unhex("9000"), unhex("9000"))
    a.transmit(0x01, 0x70, 0x80, 0x01)                      # case 1: header only
    a.transmit(0x01, 0xCA, 0x00, 0x00, None, 0)             # case 2: Le
    a.transmit(0x01, 0xDA, 0x02, 0xC0, b"\x0a\x0b")         # case 3: Lc data
    a.transmit(0x41, 0xDA, 0x02, 0xC0, b"\xff", 0x10)       # case 4: Lc data Le
    assert m.sent == [b'AT+CSIM=8,"01708001"', b'AT+CSIM=10,"01CA000000"',
                      b'AT+CSIM=14,"01DA02C0020A0B"', b'AT+CSIM=14,"41DA02C001FF10"']


def test_255_byte_data_and_more_refused():
    a, sim, m, clock = rig(unhex("9000"))
    a.transmit(0x01, 0xDA, 0x02, 0xC1, bytes(range(255)))
    assert m.sent[0].startswith(b'AT+CSIM=520,"01DA02C1FF0001')
    assert len(m.sent[0]) == len(b'AT+CSIM=520,""') + 520
    raises(ValueError, a.transmit, 0x01, 0xDA, 0x02, 0xC1, bytes(256))


def test_9000_with_and_without_data():
    a, sim, m, clock = rig(unhex("9000"), unhex("01 02 03 9000"))
    assert a.transmit(0, 0x70, 0, 0, None, 1) == apdu.SW_OK
    assert a.rsp_len == 0 and not a.proactive
    assert a.transmit(0, 0x70, 0, 0, None, 1) == 0x9000
    assert bytes(a.rsp[0:a.rsp_len]) == b"\x01\x02\x03"
    assert a.sw == 0x9000


def test_91xx_is_success_with_proactive_flag():
    a, sim, m, clock = rig(unhex("AB 9110"))
    assert a.transmit(0x01, 0xCA, 0, 0, None, 0) == apdu.SW_OK
    assert a.proactive
    assert bytes(a.rsp[0:a.rsp_len]) == b"\xab"


def test_61xx_get_response_keeps_cla_on_every_channel():
    for ch in range(1, 20):
        cla = apdu.cla_for_channel(ch)
        a, sim, m, clock = rig(unhex("6104"), unhex("00 07 00 00 9000"))
        assert a.transmit(cla, 0xCC, 0x02, 0x00, None, 0) == 0x9000
        assert sim.log == ["%02XCC020000" % cla, "%02XC0000004" % cla]  # noqa: UP031
        assert bytes(a.rsp[0:a.rsp_len]) == b"\x00\x07\x00\x00"


def test_6100_means_256_bytes_read_in_pieces_of_128():
    # the +CSIM: line of 128 bytes fits the 300-byte AT line buffer; 256 would not
    a, sim, m, clock = rig(unhex("6100"), bytes(range(128)) + b"\x61\x80",
                           bytes(range(128, 256)) + b"\x90\x00")
    assert a.transmit(0x02, 0xCA, 0x01, 0x00, None, 0) == 0x9000
    assert sim.log[1:] == ["02C0000080", "02C0000080"]
    assert a.rsp_len == 256 and bytes(a.rsp[0:256]) == bytes(range(256))


def test_61xx_answered_by_91xx():
    a, sim, m, clock = rig(unhex("6102"), unhex("AA BB 9120"))
    assert a.transmit(0x01, 0xCA, 0x01, 0x00, None, 0) == 0x9000
    assert a.proactive
    assert bytes(a.rsp[0:a.rsp_len]) == b"\xaa\xbb"


def test_chained_61xx_within_256_bytes_accepted():
    # data followed by 61xx: followed up; the whole answer fits -> accepted. (Before the fix,
    # a third GET RESPONSE ending in 9000 was reported as "response longer than 256 bytes".)
    a, sim, m, clock = rig(unhex("6110"), bytes(16) + b"\x61\x10", bytes(16) + b"\x61\x10",
                           bytes(16) + b"\x90\x00")
    assert a.transmit(0x01, 0xCA, 0x01, 0x00, None, 0) == 0x9000
    assert a.rsp_len == 48
    assert len(sim.log) == 4


def test_endless_61xx_is_an_error():
    a, sim, m, clock = rig(unhex("6110"), *([bytes(16) + b"\x61\x10"] * 4))
    e = raises(apdu.ApduError, a.transmit, 0x01, 0xCA, 0x01, 0x00, None, 0)
    assert e.sw == 0x6110 and "longer" in str(e)
    a, sim, m, clock = rig(unhex("6100"), bytes(128) + b"\x61\x00", bytes(128) + b"\x61\x10")
    e = raises(apdu.ApduError, a.transmit, 0x01, 0xCA, 0x01, 0x00, None, 0)
    assert "longer than 256" in str(e)


def test_chained_answer_overflowing_the_buffer():
    a, sim, m, clock = rig(unhex("6100"), bytes(128) + b"\x61\x7A", bytes(122) + b"\x61\x10",
                           bytes(16) + b"\x90\x00")
    e = raises(apdu.CsimError, a.transmit, 0x01, 0xCA, 0x01, 0x00, None, 0)
    assert "does not fit" in str(e)


def test_6Cxx_resends_with_le_then_61xx():
    a, sim, m, clock = rig(unhex("6C04"), unhex("01 02 03 04 9000"))
    assert a.transmit(0x01, 0xCC, 0x02, 0x00, None, 0) == 0x9000
    assert sim.log == ["01CC020000", "01CC020004"]
    assert a.rsp_len == 4
    a, sim, m, clock = rig(unhex("6C04"), unhex("6104"), unhex("01 02 03 04 9000"))
    assert a.transmit(0x01, 0xCC, 0x02, 0x00, None, 0) == 0x9000
    assert sim.log == ["01CC020000", "01CC020004", "01C0000004"]


def test_6F00_retried_once_then_returned():
    a, sim, m, clock = rig(unhex("6F00"), unhex("9000"))
    assert a.transmit(0x01, 0xA4, 0x04, 0x0C, b"\xf0") == 0x9000
    assert sim.log == ["01A4040C01F0", "01A4040C01F0"]
    a, sim, m, clock = rig(unhex("6F00"), unhex("6F00"))
    assert a.transmit(0x01, 0xA4, 0x04, 0x0C, b"\xf0") == 0x6F00
    assert len(sim.log) == 2


def test_other_status_words_returned_as_is():
    for sw in ("6A82", "6881", "6A81", "6985", "6D00", "6E00", "6A80", "9310", "6300"):
        a, sim, m, clock = rig(unhex(sw))
        assert a.transmit(0x01, 0xCA, 0x00, 0x00, None, 0) == int(sw, 16)
        assert a.sw == int(sw, 16)
        assert apdu.sw_text(a.sw) == sw
        assert len(sim.log) == 1


def test_cme_errors_busy_retried_fatal_raised():
    def modem_errors(*replies):
        a, sim, m, clock = rig(unhex("9000"))
        m.csim_errors = list(replies)
        return a, sim, m, clock

    a, sim, m, clock = modem_errors(b"\r\n+CME ERROR: 14\r\n", b"\r\n+CME ERROR: 14\r\n")
    assert a.transmit(0x01, 0xCA, 0, 0, None, 0) == 0x9000
    assert len(m.sent) == 3 and clock.slept == 200 + 400
    a, sim, m, clock = modem_errors(*([b"\r\n+CME ERROR: 14\r\n"] * 3))
    raises(modem.SimBusy, a.transmit, 0x01, 0xCA, 0, 0, None, 0)
    for n in (10, 13, 15):
        a, sim, m, clock = modem_errors(b"\r\n+CME ERROR: %d\r\n" % n)
        raises(modem.SimFatal, a.transmit, 0x01, 0xCA, 0, 0, None, 0)
        assert len(m.sent) == 1
    a, sim, m, clock = modem_errors(b"\r\nERROR\r\n")
    e = raises(modem.ModemError, a.transmit, 0x01, 0xCA, 0, 0, None, 0)
    assert "AT+CSIM" in str(e)
    a, sim, m, clock = modem_errors(b"\r\n+CME ERROR: 3\r\n")
    e = raises(modem.ModemError, a.transmit, 0x01, 0xCA, 0, 0, None, 0)
    assert "+CME ERROR: 3" in str(e)


def test_ok_without_csim_line():
    a, sim, m, clock = rig()
    m.csim_errors = [b"\r\nOK\r\n"]
    raises(apdu.CsimError, a.transmit, 0x01, 0xCA, 0, 0, None, 0)


def test_silent_modem_times_out():
    a, sim, m, clock = rig()
    m.silent = True
    raises(modem.ModemTimeout, a.transmit, 0x01, 0xCA, 0, 0, None, 0)
    assert clock.now >= 1000 + 10000


def parse(line):
    out = bytearray(258)
    return bytes(out[0:apdu.parse_csim(line, len(line), out, 0)])


def test_parse_csim_accepts():
    assert parse(b'+CSIM: 4,"9000"') == b"\x90\x00"
    assert parse(b'+CSIM:6,"01abCD"') == b"\x01\xab\xcd"
    assert parse(b'+CSIM:   4,"6A82"') == b"\x6a\x82"
    line = b'+CSIM: 516,"' + b"00" * 256 + b'9000"'
    assert parse(line) == bytes(256) + b"\x90\x00"


def test_parse_csim_rejects_with_reason():
    cases = (
        (b'+CSIM 4,"9000"', "expected +CSIM"),
        (b'+CSI', "expected +CSIM"),
        (b'+CSIM: ,"9000"', "header"),
        (b'+CSIM: 4"9000"', "header"),
        (b'+CSIM: 4,9000', "header"),
        (b'+CSIM: 4', "header"),
        (b'+CSIM: 4,', "header"),
        (b'+CSIM: 6,"9000"', "does not match"),
        (b'+CSIM: 4,"900000"', "does not match"),
        (b'+CSIM: 4,"9000" ', "does not match"),
        (b'+CSIM: 4,"9000x', "does not match"),
        (b'+CSIM: 12345,"9000"', "header"),
        (b'+CSIM: 3,"900"', "odd or short"),
        (b'+CSIM: 2,"90"', "odd or short"),
        (b'+CSIM: 0,""', "odd or short"),
        (b'+CSIM: 4,"90G0"', "non-hex"),
        (b'+CSIM: 4,"9 00"', "non-hex"),
        (b'+CSIM: 4,"\xff\xff00"', "non-hex"),
        (b'+CSIM: 520,"' + b"00" * 258 + b'9000"', "does not fit"),
    )
    for line, why in cases:
        e = raises(apdu.CsimError, parse, line)
        assert why in str(e), (line, str(e))
        assert isinstance(e, apdu.ApduError)
