# lib/at.py alone: the sans-I/O AT engine (runs under pytest and MicroPython).
# Every reply is fed three ways (STYLE.md 5): all at once, one byte at a time (NEED_DATA until
# the last byte), and with trailing data after it.
import at
from fw_fakes import raises

CSIM_CMD = b'AT+CSIM=10,"0070000001"'
CSIM_INFO = b'+CSIM: 6,"019000"'


def snap(eng, ev):
    # an event as plain data (the engine's buffers are shared and get overwritten)
    if ev == at.REPLY:
        return ("REPLY", eng.result, eng.cme, bytes(eng.info[0:eng.info_len]))
    if ev == at.URC:
        return ("URC", bytes(eng.urc[0:eng.urc_len]))
    if ev == at.TIMEOUT:
        return ("TIMEOUT",)
    raise AssertionError("unknown event %r" % ev)  # noqa: UP031


def drain(eng):
    out = []
    for _ in range(1000):
        ev = eng.next_event()
        if ev == at.NEED_DATA:
            return out
        out.append(snap(eng, ev))
    raise AssertionError("next_event never returned NEED_DATA")


def pump(eng, data, step):
    # feeds data in pieces of at most `step` bytes, never more than room(), draining after
    # each piece (what modem.Link does); -> all events
    out = []
    i = 0
    for _ in range(len(data) + 1000):
        if i >= len(data):
            break
        k = min(step, eng.room(), len(data) - i)
        if k:
            eng.receive_data(data[i:i + k])
            i += k
        out.extend(drain(eng))
    return out


def engine(cmd=CSIM_CMD, prefix=b"+CSIM:", max_line=600):
    e = at.AtEngine(max_line=max_line)
    if cmd is not None:
        e.command(cmd, 0, 1000, prefix)
    return e


def three_ways(cmd, prefix, reply, expected):
    # all at once
    e = engine(cmd, prefix)
    e.receive_data(reply)
    assert drain(e) == expected
    assert not e.pending()
    # byte by byte: nothing before the last LF of the reply
    e = engine(cmd, prefix)
    got = []
    last_lf = len(reply) - 1
    while reply[last_lf] != 10:
        last_lf -= 1
    for i in range(len(reply)):
        e.receive_data(reply[i:i + 1])
        evs = drain(e)
        if i < last_lf and expected and expected[-1][0] == "REPLY":
            assert not any(ev[0] == "REPLY" for ev in evs), i
        got.extend(evs)
    assert got == expected
    # trailing data: a URC, then the start of another line
    e = engine(cmd, prefix)
    e.receive_data(reply + b"\r\n+CREG: 1\r\nOK")
    assert drain(e) == expected + [("URC", b"+CREG: 1")]
    # the half line "OK" stays buffered until its LF, then is garbage (no command pending)
    g = e.garbage
    e.receive_data(b"\r\n")
    assert drain(e) == []
    assert e.garbage == g + 1


def test_ok():
    three_ways(b"AT", None, b"\r\nOK\r\n", [("REPLY", at.OK, 0, b"")])


def test_error():
    three_ways(b"AT+X", None, b"\r\nERROR\r\n", [("REPLY", at.ERROR, 0, b"")])


def test_cme_error_numeric_and_verbose():
    three_ways(CSIM_CMD, b"+CSIM:", b"\r\n+CME ERROR: 14\r\n",
               [("REPLY", at.CME_ERROR, 14, b"")])
    three_ways(CSIM_CMD, b"+CSIM:", b"\r\n+CME ERROR: SIM busy\r\n",
               [("REPLY", at.CME_ERROR, -1, b"")])
    three_ways(CSIM_CMD, b"+CSIM:", b"\r\n+CME ERROR:1234567\r\n",
               [("REPLY", at.CME_ERROR, -1, b"")])


def test_cms_error_is_error():
    three_ways(b"AT+CMGS", None, b"\r\n+CMS ERROR: 500\r\n", [("REPLY", at.ERROR, 0, b"")])


def test_info_line_then_ok():
    three_ways(CSIM_CMD, b"+CSIM:", b"\r\n" + CSIM_INFO + b"\r\n\r\nOK\r\n",
               [("REPLY", at.OK, 0, CSIM_INFO)])


def test_bare_lf_line_ends():
    three_ways(CSIM_CMD, b"+CSIM:", b"\n" + CSIM_INFO + b"\nOK\n",
               [("REPLY", at.OK, 0, CSIM_INFO)])


def test_echo_is_skipped():
    # ATE1: the command comes back first, ended by CR (some modems CR CR LF)
    for echo in (CSIM_CMD + b"\r", CSIM_CMD + b"\r\r\n", CSIM_CMD + b"\r\n"):
        three_ways(CSIM_CMD, b"+CSIM:", echo + b"\r\n" + CSIM_INFO + b"\r\n\r\nOK\r\n",
                   [("REPLY", at.OK, 0, CSIM_INFO)])


def test_echo_of_another_command_is_garbage():
    e = engine()
    e.receive_data(b"AT+CSIM=10,\"0070000002\"\r\r\n" + CSIM_INFO + b"\r\nOK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, CSIM_INFO)]
    assert e.garbage == 1


def test_echo_and_plain_error_are_signs_of_at_defaults():
    # a modem back at its defaults (ATE1, AT+CMEE=0: it rebooted) shows it by an echo or by a
    # plain ERROR; +CME ERROR, +CMS ERROR, OK and an echo of another command do not
    for reply, seen in ((CSIM_CMD + b"\r\r\n" + CSIM_INFO + b"\r\n\r\nOK\r\n", True),
                        (b"\r\nERROR\r\n", True),
                        (b"\r\n+CME ERROR: 14\r\n", False),
                        (b"\r\n+CMS ERROR: 500\r\n", False),
                        (b"AT+CSIM=10,\"0070000002\"\r\r\n" + CSIM_INFO + b"\r\nOK\r\n", False),
                        (b"\r\n" + CSIM_INFO + b"\r\n\r\nOK\r\n", False)):
        e = engine()
        assert not e.defaults_seen
        e.receive_data(reply)
        assert drain(e)[-1][0] == "REPLY"
        assert e.defaults_seen == seen, reply


def test_urcs_between_lines():
    reply = (b"\r\n+CREG: 5\r\n" + b"\r\n" + CSIM_INFO + b"\r\n\r\nRING\r\n"
             + b"\r\n+UUSTKPROACTIVE: 1\r\n\r\nOK\r\n")
    three_ways(CSIM_CMD, b"+CSIM:", reply,
               [("URC", b"+CREG: 5"), ("URC", b"RING"), ("URC", b"+UUSTKPROACTIVE: 1"),
                ("REPLY", at.OK, 0, CSIM_INFO)])


def test_urc_outside_a_command():
    e = engine(None)
    e.receive_data(b"\r\n+CGREG: 1\r\n\r\nNO CARRIER\r\n")
    assert drain(e) == [("URC", b"+CGREG: 1"), ("URC", b"NO CARRIER")]


def test_urc_with_the_commands_prefix_before_the_info_line():
    # waiting for +CREG: a URC +CREG: 2 arrives first: it is taken as the info line (same
    # syntax); the real answer then counts as a URC. Documented, harmless: the caller polls.
    e = engine(b"AT+CREG?", b"+CREG:")
    e.receive_data(b"\r\n+CREG: 2\r\n\r\n+CREG: 0,1\r\n\r\nOK\r\n")
    assert drain(e) == [("URC", b"+CREG: 0,1"), ("REPLY", at.OK, 0, b"+CREG: 2")]


def test_long_urc_truncated_to_its_buffer():
    urc = b"+UUSORD: " + b"7" * 300
    e = engine(None)
    e.receive_data(b"\r\n" + urc + b"\r\n")
    ev = drain(e)
    assert ev == [("URC", urc[0:len(e.urc)])]


def test_garbage_skipped_and_counted():
    reply = (b"\x00\x00\r\n\xff\xfe\xa5 noise\r\n" + b"\r\n" + CSIM_INFO + b"\r\n"
             + b"\x1b[0m\r\n\r\nOK\r\n")
    three_ways(CSIM_CMD, b"+CSIM:", reply, [("REPLY", at.OK, 0, CSIM_INFO)])
    e = engine()
    e.receive_data(reply)
    drain(e)
    assert e.garbage == 2       # the NUL-only line is blank once stripped


def test_leading_nul_and_spaces_stripped():
    e = engine()
    e.receive_data(b"\x00\x00  OK  \r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]


def test_second_info_line_not_taken():
    e = engine()
    e.receive_data(b"\r\n" + CSIM_INFO + b"\r\n+CSIM: 4,\"9000\"\r\nOK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, CSIM_INFO)]
    assert e.garbage == 1


def test_line_length_cap_drops_overlong_line_then_recovers():
    cap = 40
    # a line of exactly max_line characters (+ CR LF) is kept
    info = b'+CSIM: 32,"' + b"A" * 28 + b'"'
    info = info[0:cap - 2] + b'0"'
    assert len(info) == cap
    for step in (1, 7, 1000):
        e = engine(max_line=cap)
        assert pump(e, b"\r\n" + info + b"\r\nOK\r\n", step) == [("REPLY", at.OK, 0, info)]
    # a longer one is dropped up to its LF; the reply after it still parses
    long = b'+CSIM: 500,"' + b"B" * 500 + b'"'
    for step in (1, 7, 64, 1000):
        e = engine(max_line=cap)
        evs = pump(e, b"\r\n" + long + b"\r\n+CREG: 1\r\nOK\r\n", step)
        assert evs == [("URC", b"+CREG: 1"), ("REPLY", at.OK, 0, b"")], (step, evs)
        assert e.garbage >= 1
        assert e.room() == len(e._rx)     # nothing left over


def test_megabytes_without_lf_stay_bounded():
    e = engine(max_line=64)
    size = len(e._rx)
    chunk = b"\xaa" * 61
    for _ in range(2000):
        k = min(len(chunk), e.room())
        e.receive_data(chunk, k)
        assert drain(e) == []
        assert len(e._rx) == size
    e.receive_data(b"\r\nOK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]


def test_receive_beyond_room_is_local_misuse():
    e = engine(max_line=16)
    raises(at.AtUsageError, e.receive_data, b"x" * (e.room() + 1))
    e.receive_data(b"")                      # empty: nothing happens
    assert drain(e) == []


def test_receive_data_n_and_compaction():
    e = engine(max_line=16)
    buf = bytearray(b"\r\nOK\r\nXXXXXXXX")
    e.receive_data(buf, 6)
    assert drain(e) == [("REPLY", at.OK, 0, b"")]
    # many small lines through a small buffer: compaction keeps room
    e.command(b"AT", 0)
    for _ in range(50):
        e.receive_data(b"\r\nRING\r\n")
        assert drain(e) == [("URC", b"RING")]
    e.receive_data(b"OK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]


def test_command_bytes_and_usage_errors():
    e = at.AtEngine(max_line=32, max_cmd=20)
    out = e.command(b"AT+CREG?", 0)
    assert bytes(out) == b"AT+CREG?\r"
    assert e.pending()
    raises(at.AtUsageError, e.command, b"AT", 0)
    e.receive_data(b"OK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]
    assert bytes(e.command(bytearray(b"AT+CSIM=...junk"), 0, 1000, None, 2)) == b"AT\r"
    e.receive_data(b"OK\r\n")
    drain(e)
    raises(at.AtUsageError, e.command, b"A" * 21, 0)
    assert not e.pending()


def test_timeout_and_timer():
    e = at.AtEngine()
    assert e.timer() is None
    e.command(b"AT", 5000, 1000)
    assert e.timer() == 6000
    e.handle_timer(5999)
    assert drain(e) == []
    e.handle_timer(6000)
    assert drain(e) == [("TIMEOUT",)]
    assert not e.pending() and e.timer() is None
    # a late reply after the timeout is not a reply to anything
    e.receive_data(b"\r\nOK\r\n")
    assert drain(e) == []
    assert e.garbage == 1
    e.handle_timer(99999)                 # idle: nothing queued
    assert drain(e) == []


def test_timeout_across_tick_wrap():
    period = 1 << 30
    e = at.AtEngine()
    e.command(b"AT", period - 100, 1000)
    assert e.timer() == 900
    e.handle_timer(period - 1)
    e.handle_timer(0)
    e.handle_timer(899)
    assert drain(e) == []
    e.handle_timer(900)
    assert drain(e) == [("TIMEOUT",)]


def test_reply_before_timer_wins():
    e = at.AtEngine()
    e.command(b"AT", 0, 1000)
    e.receive_data(b"OK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]
    e.handle_timer(5000)
    assert drain(e) == []


def test_ticks_helpers():
    period = 1 << 30
    assert at.ticks_diff(10, 5) == 5
    assert at.ticks_diff(5, 10) == -5
    assert at.ticks_diff(3, period - 2) == 5
    assert at.ticks_diff(period - 2, 3) == -5
    assert at.ticks_add(period - 1, 2) == 1


def test_info_line_longer_than_info_buffer_not_copied():
    e = at.AtEngine(max_line=32)
    e.command(CSIM_CMD, 0, 1000, b"+CSIM:")
    line = b"+CSIM: " + b"1" * 26          # 33 characters: fits the rx buffer, not info
    e.receive_data(line + b"\n")
    assert drain(e) == []
    e.receive_data(b"OK\r\n")
    assert drain(e) == [("REPLY", at.OK, 0, b"")]
