# ztp: host-only (hypothesis; the MicroPython runner skips this file)
"""Property tests for the firmware parsers (STYLE.md 5): any bytes into the AT engine give
events and nothing else with bounded memory; the config parser parses or raises ConfigError;
a valid AT stream split anywhere gives the same events; +CSIM parsing raises only CsimError."""

from __future__ import annotations

import apdu
import at
import config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROFILE = settings(max_examples=100, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

CMD = b'AT+CSIM=10,"01CC020000"'
LINES = [b"OK", b"ERROR", b"+CME ERROR: 14", b"+CME ERROR: x", b'+CSIM: 4,"9000"',
         b"+CREG: 1", b"RING", b"+UUSTKPROACTIVE: 1", CMD, b"", b"\x00\xff junk", b"+CSIM:",
         b"A" * 70]


def drain(eng: at.AtEngine) -> list[tuple]:
    out = []
    for _ in range(10_000):
        ev = eng.next_event()
        if ev == at.NEED_DATA:
            return out
        if ev == at.REPLY:
            out.append(("REPLY", eng.result, eng.cme, bytes(eng.info[:eng.info_len])))
            if not eng.pending():
                eng.command(CMD, 0, 1000, b"+CSIM:")     # keep a command pending
        elif ev == at.URC:
            out.append(("URC", bytes(eng.urc[:eng.urc_len])))
        else:
            raise AssertionError(f"unexpected event {ev}")
    raise AssertionError("next_event did not settle")


def feed(data: bytes, cuts: list[int], max_line: int = 64) -> tuple[list[tuple], at.AtEngine]:
    eng = at.AtEngine(max_line=max_line, max_cmd=64)
    eng.command(CMD, 0, 1000, b"+CSIM:")
    sizes = (len(eng._rx), len(eng.info), len(eng.urc), len(eng._tx))
    events: list[tuple] = []
    pos = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        while pos < cut:
            k = min(cut - pos, eng.room())
            if k:
                eng.receive_data(data[pos:pos + k])
                pos += k
            events.extend(drain(eng))
            # memory stays bounded: no buffer grows, lengths stay inside them
            assert (len(eng._rx), len(eng.info), len(eng.urc), len(eng._tx)) == sizes
            assert 0 <= eng._r <= eng._n <= len(eng._rx)
            assert eng.info_len <= len(eng.info) and eng.urc_len <= len(eng.urc)
    return events, eng


# random bytes, mixed with real lines and line ends so that lines actually complete
any_at_bytes = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.one_of(st.binary(max_size=80),
                       st.sampled_from([*LINES, b"\r\n", b"\n", b"\r"])),
             max_size=60).map(b"".join))


@PROFILE
@given(any_at_bytes, st.lists(st.integers(0, 5000), max_size=20))
def test_any_bytes_into_at_engine_only_events(data: bytes, cuts: list[int]) -> None:
    # the engine's parse path raises nothing at all (garbage is counted and skipped), so
    # neither AtError nor anything else may come out
    events, eng = feed(data, [c for c in cuts if c <= len(data)])
    for ev in events:
        assert ev[0] in ("REPLY", "URC")
        if ev[0] == "REPLY":
            assert ev[1] in (at.OK, at.ERROR, at.CME_ERROR)
            assert len(ev[3]) <= 64


@PROFILE
@given(st.lists(st.sampled_from(LINES), max_size=30),
       st.lists(st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]), min_size=1, max_size=3),
       st.lists(st.integers(0, 4000), max_size=30))
def test_at_stream_split_anywhere_same_events(lines: list[bytes], ends: list[bytes],
                                              cuts: list[int]) -> None:
    data = b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    whole, _ = feed(data, [])
    split, _ = feed(data, [c for c in cuts if c <= len(data)])
    byte_by_byte, _ = feed(data, list(range(len(data))))
    assert split == whole
    assert byte_by_byte == whole


@PROFILE
@given(st.binary(max_size=300))
def test_config_any_bytes_parse_or_config_error(body: bytes) -> None:
    try:
        c = config.parse_config(body)
    except config.ConfigError:
        return
    assert c.kind in (config.KIND_ACTIONS, config.KIND_SETTINGS)


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
                        st.text(max_size=70), st.floats(allow_nan=False))
json_value = st.recursive(json_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)


@PROFILE
@given(st.one_of(
    json_value,
    st.fixed_dictionaries({"configuration": st.fixed_dictionaries(
        {"config": st.lists(st.fixed_dictionaries({"action": st.text(max_size=40),
                                                   "effect": st.text(max_size=40)}),
                            max_size=3)},
        optional={"version": json_value})}),
))
def test_config_json_values_parse_or_config_error(value: object) -> None:
    import json

    body = json.dumps(value).encode()
    try:
        c = config.parse_config(body)
    except config.ConfigError:
        return
    if c.kind == config.KIND_ACTIONS:
        for a, e in c.actions:
            assert a.count(":") == 1 and ":" not in e
    else:
        assert c.settings == value


@PROFILE
@given(st.binary(max_size=600))
def test_csim_any_bytes_parse_or_csim_error(line: bytes) -> None:
    out = bytearray(258)
    for candidate in (line, b"+CSIM: " + line):
        try:
            n = apdu.parse_csim(candidate, len(candidate), out, 0)
        except apdu.CsimError:
            continue
        assert 2 <= n <= 258


@PROFILE
@given(st.binary(min_size=2, max_size=258))
def test_csim_build_parse_round_trip(rsp: bytes) -> None:
    h = rsp.hex().upper().encode()
    line = b'+CSIM: %d,"' % len(h) + h + b'"'
    out = bytearray(258)
    n = apdu.parse_csim(line, len(line), out, 0)
    assert bytes(out[:n]) == rsp
