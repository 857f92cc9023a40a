"""What the HTTP API accepts: the request schemas of the OpenAPI document and the
``parse_*`` validators that enforce them in the handlers (and in the bulk imports).

The two live side by side on purpose: a schema that says a field is "18-20 digits" and a
validator that checks it are one rule, changed together. Validators raise ``BadRequest``
with a message that names the field; they never touch the database.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..iccid import IccidError, iccid_from_hex, normalize_iccid
from ._errors import BadRequest
from ._settings import CONFIG_BODY_MAX

__all__ = [
    "CONFIG",
    "DEFAULT_DEVICE",
    "ERROR",
    "JSON",
    "KEY",
    "KEY_KINDS",
    "KEY_LENGTHS",
    "KEY_STATES",
    "SCHEMAS",
    "SIM",
    "SIM_STATES",
    "S_BODY",
    "S_BOOL",
    "S_CLIENT_ID",
    "S_COMMENT",
    "S_DEVICE",
    "S_DEVICE_OR_DEFAULT",
    "S_GATEWAY_NAME",
    "S_HEX_OTA_KEY",
    "S_HEX_PSK",
    "S_ICCID",
    "S_ICCID_ANY",
    "S_IDENT",
    "S_INT",
    "S_JSON_BODY",
    "S_LABELS",
    "S_SCOPE_TEXT",
    "S_STR",
    "S_TAG",
    "S_TOKEN",
    "VERSION",
    "check_fields",
    "config_body",
    "obj",
    "parse_body",
    "parse_bool",
    "parse_comment",
    "parse_device_id",
    "parse_event_kind",
    "parse_gateway_name",
    "parse_iccid",
    "parse_identity_hex",
    "parse_key_hex",
    "parse_labels",
    "parse_tag",
    "req",
]

SIM_STATES = ("active", "suspended")
KEY_STATES = ("active", "retired")
KEY_KINDS = ("psk", "kic", "kid")
KEY_LENGTHS = {"psk": (16, 32), "kic": (16, 24, 32), "kid": (16, 24, 32)}
DEFAULT_DEVICE = "default"
_TAG = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LABEL_KEY = re.compile(r"[a-z0-9_.-]{1,32}")
_DEVICE_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){1,64}")
_IDENTITY_HEX = re.compile(r"[0-9a-fA-F]{20}")
_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,63}")
_GATEWAY_NAME = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")
_LABELS_MAX = 16
_LABEL_VALUE_MAX = 64
_COMMENT_MAX = 200
# control characters and lone surrogates (not storable as UTF-8): not in comments
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


# ---------------------------------------------------------------------------- validation


def parse_iccid(value: object, *, force: bool = False) -> str:
    """An ICCID from input; ``force`` accepts a wrong Luhn digit (never a wrong format)."""
    if not isinstance(value, str):
        raise BadRequest("iccid must be a string of 18-20 digits")
    try:
        return normalize_iccid(value, check_luhn=not force)
    except IccidError as exc:
        raise BadRequest(f"bad iccid: {exc}", code="invalid_iccid") from None


def parse_identity_hex(value: object, what: str = "identity") -> str:
    """Hex of the 10 EF_ICCID bytes -> lowercase hex (validated as BCD)."""
    if not isinstance(value, str) or not _IDENTITY_HEX.fullmatch(value):
        raise BadRequest(f"{what} must be 20 hex characters (EF_ICCID bytes)")
    try:
        iccid_from_hex(value)
    except IccidError as exc:
        raise BadRequest(f"bad {what}: {exc}") from None
    return value.lower()


def parse_device_id(value: object, *, allow_default: bool = False) -> str:
    """A device id: hex of 1-64 bytes, lowercased (``default`` too, when
    ``allow_default``: the SIM-wide configuration)."""
    if allow_default and value == DEFAULT_DEVICE:
        return DEFAULT_DEVICE
    if not isinstance(value, str) or not _DEVICE_HEX.fullmatch(value):
        extra = " or 'default'" if allow_default else ""
        raise BadRequest(f"device id must be hex of 1-64 bytes{extra}, got {str(value)[:40]!r}")
    return value.lower()


def parse_labels(value: object) -> dict[str, str]:
    """Operator labels: at most 16 ``key: value`` pairs of short strings (None:
    no labels)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _LABELS_MAX:
        raise BadRequest(f"labels must be an object of at most {_LABELS_MAX} entries")
    for k, v in value.items():
        if not _LABEL_KEY.fullmatch(k):
            raise BadRequest(f"label key {k[:40]!r} must match [a-z0-9_.-]{{1,32}}")
        if not isinstance(v, str) or len(v) > _LABEL_VALUE_MAX:
            raise BadRequest(f"label {k!r}: value must be a string of <= 64 characters")
    return dict(value)


def parse_tag(value: object) -> str:
    """A key tag: 1-32 characters of ``A-Z a-z 0-9 _ . -``."""
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise BadRequest("key tag must be 1-32 characters of A-Z a-z 0-9 _ . -")
    return value


def parse_key_hex(value: object, kind: str) -> bytes:
    """Key bytes from hex, of a length ``kind`` allows (PSK 16 or 32, OTA keys
    16, 24 or 32)."""
    lengths = KEY_LENGTHS[kind]
    if not isinstance(value, str):
        raise BadRequest(f"{kind}: key must be a hex string")
    try:
        key = bytes.fromhex(value)
    except ValueError:
        raise BadRequest(f"{kind}: key is not hex") from None
    if len(key) not in lengths:
        raise BadRequest(
            f"{kind}: key must be {' or '.join(map(str, lengths))} bytes, got {len(key)}"
        )
    return key


def parse_body(value: object, *, require_json: bool) -> bytes:
    """A configuration body: text, 1..254 bytes of UTF-8, JSON if required."""
    if not isinstance(value, str):
        raise BadRequest("body must be a string")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("body is not valid UTF-8 text") from None
    if not raw:
        raise BadRequest("body is empty (delete the configuration instead)")
    if len(raw) > CONFIG_BODY_MAX:
        raise BadRequest(
            f"body is {len(raw)} bytes of UTF-8; at most {CONFIG_BODY_MAX} allowed "
            "(seed: 'less than 255 characters')",
            code="body_too_long",
        )
    if require_json:
        try:
            json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"body must be JSON here: {exc}", code="invalid_json") from None
    return raw


def parse_comment(value: object) -> str:
    """A version comment: text of <= 200 characters, no control characters (it
    is shown in terminals and logs)."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > _COMMENT_MAX or _NOT_TEXT.search(value):
        raise BadRequest(f"comment must be text of <= {_COMMENT_MAX} characters without "
                         "control characters")
    return value


def parse_bool(value: object, name: str, default: bool | None = None) -> bool | None:
    """A JSON boolean, or ``default`` when absent (never a truthy string)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def parse_gateway_name(value: str | None) -> str:
    """The ``X-ZTP-Gateway`` header: the gateway's name in the audit log."""
    if value is None or not _GATEWAY_NAME.fullmatch(value):
        raise BadRequest("X-ZTP-Gateway must be 1-64 characters of A-Z a-z 0-9 _ . @ : -")
    return value


def check_fields(row: dict[str, Any], known: frozenset[str], *, nulls: bool) -> None:
    """Only ``known`` fields in an import row; with ``nulls=False`` an optional field is left
    out, not null (a typo or a stray column is an error, never silently ignored)."""
    unknown = set(row) - known
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    if not nulls and any(v is None for v in row.values()):
        raise BadRequest("null is not a value here: leave the field out")


def parse_event_kind(value: object) -> str:
    """The ``kind`` of a gateway event: it becomes part of an audit action name."""
    if not isinstance(value, str) or not _EVENT_KIND.fullmatch(value):
        raise BadRequest("kind must match [a-z][a-z0-9_]{0,63}")
    return value


# ---------------------------------------------------------------------------- schemas

ERROR = {"$ref": "#/components/schemas/Error"}
SIM = {"$ref": "#/components/schemas/Sim"}
CONFIG = {"$ref": "#/components/schemas/Config"}
VERSION = {"$ref": "#/components/schemas/ConfigVersion"}
KEY = {"$ref": "#/components/schemas/Key"}
JSON = "application/json"


def obj(props: dict[str, Any], required: tuple[str, ...] = (), extra: bool = True) -> dict:
    """A JSON Schema object of ``props`` (``extra=False``: no other field)."""
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    return schema


def req(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict:
    """A request body object: exactly these fields (the handlers refuse unknown ones)."""
    return obj(props, required, extra=False)


# Request schemas say exactly what the handlers accept (issue 13; Schemathesis checks both
# ways in the test suite). Where JSON Schema cannot say it (a Luhn digit, bytes of UTF-8),
# a named format carries the rule and its description says it.
S_STR = {"type": "string"}
S_INT = {"type": "integer"}
S_BOOL = {"type": "boolean"}
S_ICCID = {"type": "string", "pattern": "^[0-9]{18,20}$", "format": "iccid",
           "description": "18-20 digits; the last one is the Luhn check digit (unless force)",
           "example": "8944502509186389635"}
S_ICCID_ANY = {"type": "string", "pattern": "^[0-9]{18,20}$",
               "description": "18-20 digits (no Luhn check)", "example": "8944502509186389635"}
# EF_ICCID (10 bytes of swapped BCD, an F filler only at the end, 18-20 digits) in hex
S_IDENT = {"type": "string", "pattern": "^[0-9]{18}([0-9]{2}|[fF][0-9]|[fF]{2})$",
           "example": "984405529081369836f5"}
S_DEVICE = {"type": "string", "pattern": "^([0-9a-fA-F]{2}){1,64}$"}
S_DEVICE_OR_DEFAULT = {"type": "string", "pattern": "^(default|([0-9a-fA-F]{2}){1,64})$"}
S_LABELS = {"type": "object", "maxProperties": 16,
            "propertyNames": {"pattern": "^[a-z0-9_.-]{1,32}$"},
            "additionalProperties": {"type": "string", "maxLength": 64}}
S_TAG = {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,32}$"}
S_HEX_PSK = {"type": "string", "pattern": "^([0-9a-fA-F]{32}|[0-9a-fA-F]{64})$",
             "description": "hex of 16 or 32 bytes"}
S_HEX_OTA_KEY = {"type": "string",
                 "pattern": "^([0-9a-fA-F]{32}|[0-9a-fA-F]{48}|[0-9a-fA-F]{64})$",
                 "description": "hex of 16, 24 or 32 bytes"}
# text without control characters (\x escapes: \u ones are not read alike by every tool)
S_COMMENT = {"type": "string", "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$",
             "description": "text without control characters"}
S_BODY = {"type": "string", "minLength": 1, "maxLength": 254, "format": "config-body",
          "description": "1-254 bytes of UTF-8 (a character may take several)"}
S_JSON_BODY = {**S_BODY, "format": "json-text", "description": "JSON text of 1-254 bytes"}


def config_body(props: dict[str, Any], required: tuple[str, ...]) -> dict:
    """A body with ``body`` and ``require_json``: require_json true needs a JSON body (a
    named format: JSON Schema cannot say "JSON text")."""
    plain = {**props, "body": S_BODY, "require_json": {"const": False}}
    as_json = {**props, "body": S_JSON_BODY, "require_json": {"const": True}}
    return {"oneOf": [req(plain, required), req(as_json, (*required, "require_json"))],
            "description": "require_json: true needs a JSON body"}
S_CLIENT_ID = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}
S_GATEWAY_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.@:-]{1,64}$"}
_SCOPE = "(read|write|admin|gateway)"
S_SCOPE_TEXT = {"type": "string", "pattern": f"^({_SCOPE}( {_SCOPE})*)?$",
                "description": "scope tokens separated by single spaces (RFC 6749 §3.3)"}
S_TOKEN = {"type": "string", "minLength": 1, "maxLength": 200}

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": S_STR, "detail": S_STR}, ("error", "detail")),
    "Key": obj({"kind": {"enum": list(KEY_KINDS)}, "tag": S_STR, "state": S_STR,
                "master_version": S_INT, "created_ms": S_INT, "created_by": S_STR}),
    "Sim": obj({"iccid": S_STR, "identity": S_STR, "state": {"enum": ["active", "suspended"]},
                "labels": S_LABELS, "bind_first_device": S_BOOL,
                "bound_device_id": {"type": ["string", "null"]},
                "last_device_id": {"type": ["string", "null"]},
                "created_ms": S_INT, "updated_ms": S_INT,
                "keys": {"type": "array", "items": KEY}},
               ("iccid", "identity", "state")),
    "ConfigVersion": obj({"version": S_INT, "deleted": S_BOOL,
                          "body": {"type": ["string", "null"]}, "created_ms": S_INT,
                          "created_by": S_STR, "comment": S_STR}, ("version",)),
    "Config": obj({"iccid": S_STR, "device_id": S_STR, "require_json": S_BOOL,
                   "version": S_INT, "body": {"type": ["string", "null"]}},
                  ("iccid", "device_id", "version")),
}
