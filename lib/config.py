# config: parse and validate a configuration body delivered by the SAFE2 applet.
#
# The body is UTF-8 JSON of at most 255 bytes (SAFE2-PROTOCOL.md "Configuration body"), in
# one of two shapes:
#   reference  {"configuration":{"version":"2021-05-31",
#                                "config":[{"action":"iot:Alarm","effect":"On"}, ...]}}
#   settings   a flat object of settings: {"interval_s":60,"apn":"iot","debug":false}
# Anything else is rejected with a reason (ConfigError); nothing is applied from a body that
# fails here.

from micropython import const

import json

_MAX_BODY = const(255)
_MAX_ITEMS = const(16)
_MAX_NAME = const(32)
_MAX_VALUE = const(64)

KIND_ACTIONS = const(1)
KIND_SETTINGS = const(2)


class ConfigError(ValueError):
    # remote: the body is not a configuration this firmware accepts
    pass


class Config:
    # kind: KIND_ACTIONS or KIND_SETTINGS; version: str or None;
    # actions: tuple of (action, effect) str pairs; settings: dict (str -> str/int/bool/None)
    def __init__(self, kind, version, actions, settings):
        self.kind = kind
        self.version = version
        self.actions = actions
        self.settings = settings


def _name_ok(s, colon):
    # printable ASCII identifier: letters, digits, _ - . and (for actions) one ':'
    if not 1 <= len(s) <= _MAX_NAME:
        return False
    colons = 0
    for ch in s:
        o = ord(ch)
        if o == 58:
            colons += 1
            continue
        if not (48 <= o <= 57 or 65 <= o <= 90 or 97 <= o <= 122 or o == 95 or o == 45
                or o == 46):
            return False
    return colons == 1 if colon else colons == 0


def parse_config(body, n=-1):
    # body[:n] -> Config, or raises ConfigError saying why
    if n < 0:
        n = len(body)
    if n == 0:
        raise ConfigError("empty body")
    if n > _MAX_BODY:
        raise ConfigError("body of %d bytes, at most %d" % (n, _MAX_BODY))
    try:
        text = bytes(memoryview(body)[0:n]).decode("utf-8")
    except UnicodeError:
        raise ConfigError("body is not UTF-8")
    s = text.strip()
    if not s or s[0] != "{" or s[-1] != "}":
        raise ConfigError("body is not a JSON object")
    try:
        obj = json.loads(s)
    except ValueError:
        raise ConfigError("body is not valid JSON")
    if not isinstance(obj, dict):
        raise ConfigError("body is not a JSON object")
    if "configuration" in obj:
        return _parse_reference(obj)
    return _parse_settings(obj)


def _parse_reference(obj):
    if len(obj) != 1:
        raise ConfigError("unexpected keys beside \"configuration\"")
    c = obj["configuration"]
    if not isinstance(c, dict):
        raise ConfigError("\"configuration\" is not an object")
    for k in c:
        if k != "version" and k != "config":
            raise ConfigError("unknown key in \"configuration\": %s" % k[:_MAX_NAME])
    version = c.get("version")
    if version is not None and (not isinstance(version, str) or not 1 <= len(version) <= 32):
        raise ConfigError("\"version\" must be a string of 1-32 characters")
    items = c.get("config")
    if not isinstance(items, list):
        raise ConfigError("\"config\" missing or not a list")
    if not 1 <= len(items) <= _MAX_ITEMS:
        raise ConfigError("\"config\" must have 1-%d entries" % _MAX_ITEMS)
    actions = []
    for i in range(len(items)):
        it = items[i]
        if not isinstance(it, dict) or len(it) != 2 or "action" not in it or "effect" not in it:
            raise ConfigError("config[%d]: expected exactly \"action\" and \"effect\"" % i)
        a = it["action"]
        e = it["effect"]
        if not isinstance(a, str) or not _name_ok(a, True):
            raise ConfigError("config[%d]: bad action name" % i)
        if not isinstance(e, str) or not _name_ok(e, False):
            raise ConfigError("config[%d]: bad effect" % i)
        actions.append((a, e))
    return Config(KIND_ACTIONS, version, tuple(actions), None)


def _parse_settings(obj):
    if not 1 <= len(obj) <= _MAX_ITEMS:
        raise ConfigError("settings object must have 1-%d keys" % _MAX_ITEMS)
    for k in obj:
        if not _name_ok(k, False):
            raise ConfigError("bad setting name")
        v = obj[k]
        if v is None or isinstance(v, bool) or isinstance(v, int):
            continue
        if isinstance(v, str):
            if len(v) > _MAX_VALUE:
                raise ConfigError("setting %s: value longer than %d" % (k, _MAX_VALUE))
            continue
        raise ConfigError("setting %s: only strings, integers, booleans and null" % k)
    return Config(KIND_SETTINGS, None, (), obj)
