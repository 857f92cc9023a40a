# lib/config.py check_json: the strict RFC 8259 syntax check run before json.loads, because
# MicroPython's json.loads takes bodies that are not JSON (runs under pytest and MicroPython:
# the same table shows the check and both json modules agree on the valid documents).
import json

import config
from fw_fakes import raises

# valid JSON texts (RFC 8259 §2-§7): check_json accepts them and json.loads parses them
VALID = (
    b'{}',
    b'[]',
    b' {"a":1} ',
    b'\t\r\n{ "a" : [ 1 , 2 ] }\n',
    b'{"a":{},"b":[],"c":[[]],"d":[{}]}',
    b'{"a":0,"b":-0,"c":10,"d":-12,"e":0.5,"f":-0.0e-0,"g":1E5,"h":1e+2,"i":2.5E-3}',
    b'{"a":true,"b":false,"c":null}',
    b'{"a":"","b":"\\"\\\\\\/\\b\\f\\n\\r\\t","c":"\\u00e9\\u00E9\\uD83D\\uDE00"}',
    b'{"a":"caf\xc3\xa9 \x7f"}',
    b'{"a":1,"a":2}',           # duplicate names: RFC 8259 §4 "SHOULD be unique", not a MUST
    b'"text"',
    b'42',
    b'-1.5e3',
    b'null',
    b'[' * 16 + b']' * 16,     # the nesting limit itself
    b'{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm",'
    b'"effect":"On"}]}}',
)

# (document, reason, byte offset): every one is rejected by CPython's json as well; the
# first group is what MicroPython's json.loads (v1.27) takes
INVALID = (
    (b'{"a":1,}', "expected a name", 7),
    (b'{"a":01}', "expected ',' or '}'", 6),
    (b'{"a" 1}', "expected ':'", 5),
    (b'[1,]', "expected a value", 3),
    (b'[1 2]', "expected ',' or ']'", 3),
    (b'{"a":1 "b":2}', "expected ',' or '}'", 7),
    (b'{,}', "expected a name or '}'", 1),
    (b'[,1]', "expected a value or ']'", 1),
    (b'{"a":1.}', "expected a digit", 7),
    (b'{"a":1.e5}', "expected a digit", 7),
    (b'{"a":-.1}', "expected a digit", 6),
    (b'{"a":-01}', "expected ',' or '}'", 7),
    (b'{"a":00}', "expected ',' or '}'", 6),
    (b'{"a":01.5}', "expected ',' or '}'", 6),
    (b'{"a":"\t"}', "control character in a string", 6),
    (b'{"a":"\n"}', "control character in a string", 6),
    (b'{"a":"\x01"}', "control character in a string", 6),
    (b'{"a":"\\x41"}', "bad escape", 7),
    (b'{"a":"\\q"}', "bad escape", 7),
    (b'{"a":"\\\'"}', "bad escape", 7),
    (b'{"a":"\\U0041"}', "bad escape", 7),
    (b'{"a":"\\uZZZZ"}', "bad \\u escape", 8),
    (b'{"a":"\\u004G"}', "bad \\u escape", 11),
    (b'{"a"::1}', "expected a value", 5),
    (b'{"a":1,,"b":2}', "expected a name", 7),
    (b'{"a":{]}', "expected a name or '}'", 6),
    (b'{"a":1]', "expected ',' or '}'", 6),
    (b'[1}', "expected ',' or ']'", 2),
    (b'{1:2}', "expected a name or '}'", 1),
    (b'{"a"}', "expected ':'", 4),
    (b'{"a":}', "expected a value", 5),
    (b'{"a",1}', "expected ':'", 4),
    (b'{"a":1:2}', "expected ',' or '}'", 6),
    (b'{"a":"b" "c"}', "expected ',' or '}'", 9),
    (b'{"a":true false}', "expected ',' or '}'", 10),
    (b'{"a":1}\x00', "expected the end", 7),
    (b'{"a":1}\x0b', "expected the end", 7),
    (b'{"a":[1,2,]}', "expected a value", 10),
    (b'{"a":[,]}', "expected a value or ']'", 6),
    (b'{"a":1 2}', "expected ',' or '}'", 7),
    (b'{"a":true,}', "expected a name", 10),
    (b'{"a":"b",}', "expected a name", 9),
    (b'{"a":{},}', "expected a name", 8),
    # rejected by both json modules, and here with a reason and an offset
    (b'', "expected a value, got the end", 0),
    (b'   ', "expected a value, got the end", 3),
    (b'{', "expected a name or '}', got the end", 1),
    (b'{"a":1', "expected ',' or '}', got the end", 6),
    (b'[1,', "expected a value, got the end", 3),
    (b'{"a', "unterminated string", 3),
    (b'{"a":"\\', "bad escape", 7),
    (b'{"a":"\\u00', "bad \\u escape", 10),
    (b'{"a":-}', "expected a digit", 6),
    (b'{"a":-', "expected a digit", 6),
    (b'{"a":1e}', "expected a digit", 7),
    (b'{"a":1e+}', "expected a digit", 8),
    (b'{"a":.5}', "expected a value", 5),
    (b'{"a":+1}', "expected a value", 5),
    (b'{"a":0x10}', "expected ',' or '}'", 6),
    (b'{"a":tru}', "expected a value", 5),
    (b'{"a":nul', "expected a value", 5),
    (b'{"a":True}', "expected a value", 5),
    (b'{"a":NaN}', "expected a value", 5),           # CPython's json takes NaN, RFC 8259 §6 not
    (b'{"a":Infinity}', "expected a value", 5),
    (b'{"a":-Infinity}', "expected a digit", 6),
    (b"{'a':1}", "expected a name or '}'", 1),
    (b'{a:1}', "expected a name or '}'", 1),
    (b'{"a":1}}', "expected the end", 7),
    (b'{"a":1}{"b":2}', "expected the end", 7),
    (b'{"a":\x0c1}', "expected a value", 5),         # FF is not JSON whitespace (§2)
    (b'{"a":\xc2\xa01}', "expected a value", 5),     # nor NBSP
    (b'\xef\xbb\xbf{"a":1}', "expected a value", 0),  # a BOM (§8.1: MAY ignore; we do not)
    (b'[' * 17 + b']' * 17, "nested deeper than 16", 16),
    (b'[' * 200, "nested deeper than 16", 16),
)


def test_valid_documents_pass_and_parse():
    for doc in VALID:
        config.check_json(doc, len(doc))
        json.loads(doc.decode("utf-8"))


def test_invalid_documents_name_reason_and_offset():
    for doc, why, at in INVALID:
        e = raises(config.ConfigError, config.check_json, doc, len(doc))
        msg = str(e)
        want = "body is not valid JSON: %s at byte %d" % (why, at)  # noqa: UP031 (MicroPython)
        assert msg == want, (doc, msg)


def test_check_reads_only_the_first_n_bytes_of_a_buffer():
    buf = bytearray(255)
    doc = b'{"a":[1,true]}'
    buf[0:len(doc)] = doc
    buf[len(doc)] = 0x2C       # a ',' after the text is outside body[:n]
    config.check_json(buf, len(doc))
    e = raises(config.ConfigError, config.check_json, buf, len(doc) - 1)
    assert "expected ',' or '}', got the end at byte 13" in str(e)


def test_parse_config_rejects_what_micropython_json_would_take():
    for body in (b'{"a":1,}', b'{"a":01}', b'{"a" 1}', b'{"apn":"iot"}\x00',
                 b'{"configuration":{"config":[{"action":"iot:Alarm","effect":"On"},]}}'):
        e = raises(config.ConfigError, config.parse_config, body)
        assert str(e).startswith("body is not valid JSON: "), (body, str(e))
