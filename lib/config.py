# config: parse and validate a configuration body delivered by the SAFE2 applet.
#
# The body is UTF-8 JSON of at most 255 bytes (SAFE2-PROTOCOL.md "Configuration body"), in
# one of two shapes:
#   reference  {"configuration":{"version":"2021-05-31",
#                                "config":[{"action":"iot:Alarm","effect":"On"}, ...]}}
#   settings   a flat object of settings: {"interval_s":60,"apn":"iot","debug":false}
# Anything else is rejected with a reason (ConfigError); nothing is applied from a body that
# fails here.
#
# Strict JSON (RFC 8259): MicroPython's json.loads is lax: it takes trailing commas
# ({"a":1,} [1,]), missing or doubled separators ({"a" 1} [1 2] {"a"::1} {,}), leading zeros
# (01 -01 00), "1." and "-.1", mismatched brackets ([1} {"a":1]), a name without a value ({"a"}),
# non-string names ({1:2}), raw control characters in strings, unknown escapes (\x41 \q \')
# and a bad \u (\u004G), and bytes after the text (NUL, VT). check_json() therefore runs over
# the body bytes first: a non-recursive state machine, one pass, no allocation, nesting kept as
# one bit per level in a small int (1 = object), at most _MAX_DEPTH levels (RFC 8259 §9: "An
# implementation may set limits on the maximum depth of nesting"; configurations need 3).
# Whitespace is only space, HT, LF, CR (§2); literals are lowercase true/false/null; NaN and
# Infinity are not JSON (§6), though CPython's json takes them. UTF-8 is checked by decoding.
#
# digest(): how the device names a body to the service (issue 17, docs/firmware.md "Reporting
# what was applied"): "crc32:" + 8 lowercase hex digits of CRC-32/ISO-HDLC over the body bytes,
# the CRC of zlib.crc32 and binascii.crc32 (IEEE 802.3 polynomial 0x04C11DB7, reflected
# 0xEDB88320, init and final XOR 0xFFFFFFFF). The SAMD21 build has neither hashlib nor
# binascii.crc32, and a 32-bit value is not a small int there (31-bit signed: a long int on
# the heap), so the register is kept as two 16-bit halves, bit by bit: nothing is allocated
# per byte and no table takes flash. Not a security check (anyone can forge a CRC): it only
# tells the service whether the device holds the body it delivered.

from micropython import const

import json

_MAX_BODY = const(255)
_MAX_ITEMS = const(16)
_MAX_NAME = const(32)
_MAX_VALUE = const(64)
_MAX_DEPTH = const(16)
_CRC_POLY_HI = const(0xEDB8)    # 0xEDB88320, the reflected CRC-32 polynomial, in halves
_CRC_POLY_LO = const(0x8320)

# check_json states: what comes next. Odd states may close the innermost container.
_VALUE = const(0)           # a value (start, after ':' or an array's ',')
_VALUE_OR_CLOSE = const(1)  # after '['
_NAME = const(2)            # after an object's ','
_NAME_OR_CLOSE = const(3)   # after '{'
_COLON = const(4)
_NEXT = const(5)            # after a value inside a container: ',' or its close
_END = const(6)             # after the top-level value: only whitespace
_EXPECT = ("a value", "a value or ']'", "a name", "a name or '}'", "':'", "',' or ']'",
           "the end", "',' or '}'")

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


def _bad(what, i):
    raise ConfigError("body is not valid JSON: %s at byte %d" % (what, i))


def _digits(b, i, n):
    # b[i:] starts with 1 or more digits -> index after them
    j = i
    while j < n and 48 <= b[j] <= 57:
        j += 1
    if j == i:
        _bad("expected a digit", i)
    return j


def check_json(b, n):
    # b[:n] is one JSON text (RFC 8259), else ConfigError naming the byte offset
    st = _VALUE
    stack = 0       # one bit per open container, innermost lowest: 1 = object, 0 = array
    depth = 0
    i = 0
    while True:
        while i < n and b[i] in b" \t\n\r":
            i += 1
        if i == n:
            if st == _END:
                return
            break
        c = b[i]
        if st & 1 and c == (125 if stack & 1 else 93):
            stack >>= 1
            depth -= 1
            st = _END
        elif st == _NEXT:
            if c != 44:
                break
            st = _NAME if stack & 1 else _VALUE
        elif st == _COLON:
            if c != 58:
                break
            st = _VALUE
        elif st == _END:
            break
        elif c == 34:
            # a string (§7): to its closing quote
            i += 1
            while True:
                if i == n:
                    _bad("unterminated string", i)
                c = b[i]
                if c == 34:
                    break
                if c < 32:
                    _bad("control character in a string", i)
                if c == 92:
                    i += 1
                    if i < n and b[i] == 117:       # \uXXXX
                        for _ in range(4):
                            i += 1
                            if i >= n or b[i] not in b"0123456789abcdefABCDEF":
                                _bad("bad \\u escape", i)
                    elif i == n or b[i] not in b'"\\/bfnrt':
                        _bad("bad escape", i)
                i += 1
            st = _COLON if st >= _NAME else _END
        elif st >= _NAME:
            break
        elif c == 123 or c == 91:
            if depth == _MAX_DEPTH:
                _bad("nested deeper than 16", i)
            depth += 1
            stack <<= 1
            if c == 123:
                stack |= 1
                st = _NAME_OR_CLOSE
            else:
                st = _VALUE_OR_CLOSE
            i += 1
            continue
        elif c == 45 or 48 <= c <= 57:
            # a number (§6); a 0 stands alone: "01" ends after the 0, the 1 is then unexpected
            if c == 45:
                i += 1
            if i < n and b[i] == 48:
                i += 1
            else:
                i = _digits(b, i, n)
            if i < n and b[i] == 46:
                i = _digits(b, i + 1, n)
            if i < n and b[i] in b"eE":
                i += 1
                if i < n and b[i] in b"+-":
                    i += 1
                i = _digits(b, i, n)
            i -= 1
            st = _END
        else:
            # true, false, null (§3); any other byte fails the first comparison
            w = b"true" if c == 116 else b"false" if c == 102 else b"null"
            k = 0
            while k < len(w) and i + k < n and b[i + k] == w[k]:
                k += 1
            if k < len(w):
                break
            i += k - 1
            st = _END
        if st == _END and depth:
            st = _NEXT
        i += 1
    if st == _NEXT and stack & 1:
        st = 7
    _bad("expected " + _EXPECT[st] + (", got the end" if i == n else ""), i)


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
    check_json(body, n)
    try:
        obj = json.loads(text)
    except ValueError:
        # not reached after check_json (kept: the two must never disagree silently)
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


def digest(body, n):
    # body[:n] -> "crc32:xxxxxxxx" (see the top of the module); zlib.crc32(body[:n]) in hex
    hi = 0xFFFF
    lo = 0xFFFF
    for i in range(n):
        lo ^= body[i]
        for _ in range(8):
            carry = hi & 1
            hi >>= 1
            if lo & 1:
                lo = ((lo >> 1) | (carry << 15)) ^ _CRC_POLY_LO
                hi ^= _CRC_POLY_HI
            else:
                lo = (lo >> 1) | (carry << 15)
    return "crc32:%04x%04x" % (hi ^ 0xFFFF, lo ^ 0xFFFF)
