# lib/config.py alone: the reference shape, a plain settings object, and every rejection with
# its reason (runs under pytest and MicroPython).
import config
from fw_fakes import REFERENCE_BODY, raises


def test_reference_shape():
    c = config.parse_config(REFERENCE_BODY)
    assert c.kind == config.KIND_ACTIONS
    assert c.version == "2021-05-31"
    assert c.actions == (("iot:Alarm", "On"),)
    assert c.settings is None


def test_reference_shape_in_a_larger_buffer_with_n():
    buf = bytearray(255)
    buf[0:len(REFERENCE_BODY)] = REFERENCE_BODY
    c = config.parse_config(buf, len(REFERENCE_BODY))
    assert c.actions == (("iot:Alarm", "On"),)


def test_reference_without_version_and_several_actions():
    body = (b'  {"configuration":{"config":[{"effect":"Off","action":"iot:Alarm"},'
            b'{"action":"x.y-z:A_1","effect":"level-2"}]}}\n')
    c = config.parse_config(body)
    assert c.version is None
    assert c.actions == (("iot:Alarm", "Off"), ("x.y-z:A_1", "level-2"))


def test_settings_object():
    c = config.parse_config(b'{"interval_s":60,"apn":"iot","debug":false,"x":null}')
    assert c.kind == config.KIND_SETTINGS
    assert c.version is None and c.actions == ()
    assert c.settings == {"interval_s": 60, "apn": "iot", "debug": False, "x": None}


def test_utf8_string_value_accepted():
    c = config.parse_config('{"name":"caf\u00e9"}'.encode("utf-8"))
    assert c.settings["name"] == "caf\u00e9"


def test_255_bytes_accepted_256_rejected():
    body = b'{"a":"' + b"x" * 64 + b'","b":"' + b"x" * 64 + b'","c":"' + b"x" * 64 + b'"'
    body = body + b',"d":"' + b"x" * (255 - len(body) - 8) + b'"}'
    assert len(body) == 255
    assert config.parse_config(body).kind == config.KIND_SETTINGS
    e = raises(config.ConfigError, config.parse_config, body + b" ")
    assert "256 bytes" in str(e)


REJECTIONS = (
    (b"", "empty body"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a":"\xc3("}', "not UTF-8"),
    (b"   ", "not valid JSON: expected a value, got the end at byte 3"),
    (b"[1,2]", "not a JSON object"),
    (b'"text"', "not a JSON object"),
    (b"42", "not a JSON object"),
    (b"{nope}", "not valid JSON: expected a name or '}' at byte 1"),
    (b'{"configuration": {"config": [', "expected a value or ']', got the end at byte 30"),
    (b'{"a":1,}', "not valid JSON: expected a name at byte 7"),
    (b'{"a":1}\x0b', "not valid JSON: expected the end at byte 7"),
    (b"{}", "settings object must have 1-16 keys"),
    (b'{"configuration":{"config":[]},"x":1}', "unexpected keys"),
    (b'{"configuration":[1]}', "is not an object"),
    (b'{"configuration":{"config":[],"extra":1}}', "unknown key"),
    (b'{"configuration":{"version":5,"config":[]}}', "\"version\" must be"),
    (b'{"configuration":{"version":"","config":[]}}', "\"version\" must be"),
    (b'{"configuration":{"version":"' + b"v" * 33 + b'","config":[]}}', "\"version\" must be"),
    (b'{"configuration":{"version":"1"}}', "missing or not a list"),
    (b'{"configuration":{"config":{"action":"a:b"}}}', "missing or not a list"),
    (b'{"configuration":{"config":[]}}', "1-16 entries"),
    (b'{"configuration":{"config":[' + b",".join([b"1"] * 17) + b"]}}", "1-16 entries"),
    (b'{"configuration":{"config":[1]}}', "config[0]: expected exactly"),
    (b'{"configuration":{"config":[{"action":"a:b"}]}}', "config[0]: expected exactly"),
    (b'{"configuration":{"config":[{"action":"a:b","effect":"On","x":1}]}}',
     "config[0]: expected exactly"),
    (b'{"configuration":{"config":[{"action":"a:b","effects":"On"}]}}',
     "config[0]: expected exactly"),
    (b'{"configuration":{"config":[{"action":"ab","effect":"On"}]}}', "bad action name"),
    (b'{"configuration":{"config":[{"action":"a:b:c","effect":"On"}]}}', "bad action name"),
    (b'{"configuration":{"config":[{"action":"a b:c","effect":"On"}]}}', "bad action name"),
    (b'{"configuration":{"config":[{"action":1,"effect":"On"}]}}', "bad action name"),
    (b'{"configuration":{"config":[{"action":"a:' + b"b" * 31 + b'","effect":"On"}]}}',
     "bad action name"),
    (b'{"configuration":{"config":[{"action":"a:b","effect":"O:n"}]}}', "bad effect"),
    (b'{"configuration":{"config":[{"action":"a:b","effect":""}]}}', "bad effect"),
    (b'{"configuration":{"config":[{"action":"a:b","effect":true}]}}', "bad effect"),
    (b'{"configuration":{"config":[{"action":"a:b","effect":"On"},{"action":"c:d",'
     b'"effect":"\\u00e9"}]}}', "config[1]: bad effect"),
    (b'{"bad key":1}', "bad setting name"),
    (b'{"a:b":1}', "bad setting name"),
    (b'{"":1}', "bad setting name"),
    (b'{"k":"' + b"v" * 65 + b'"}', "value longer than 64"),
    (b'{"k":1.5}', "only strings, integers, booleans and null"),
    (b'{"k":[1]}', "only strings, integers, booleans and null"),
    (b'{"k":{"a":1}}', "only strings, integers, booleans and null"),
    (b'{' + b",".join(b'"k%d":1' % i for i in range(17)) + b'}', "1-16 keys"),
)


def test_every_rejection_names_its_reason():
    for body, why in REJECTIONS:
        e = raises(config.ConfigError, config.parse_config, body)
        assert why in str(e), (body, str(e))
        assert isinstance(e, ValueError)


def test_n_limits_the_body():
    body = bytearray(b'{"a":1}XXXX')
    assert config.parse_config(body, 7).settings == {"a": 1}
    e = raises(config.ConfigError, config.parse_config, body, 0)
    assert "empty" in str(e)
    e = raises(config.ConfigError, config.parse_config, bytearray(300), 256)
    assert "at most 255" in str(e)
