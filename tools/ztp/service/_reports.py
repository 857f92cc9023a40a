"""The device's report of what it did with a configuration (issue 17), strictly parsed.

The firmware sends it as SAFE2 telemetry (``DA 02 C1``; the SIM POSTs it to
``/v1/data/{DEVICEID}``), one compact JSON object (``lib/apply.py`` ``build_report``):

    {"v":1,"digest":"crc32:1a2b3c4d","outcome":"applied","code":0,"version":"2021-05-31"}

A telemetry body is a report when it is a JSON object with a member ``v``, or when it starts
``{"v"`` (so a damaged report is refused, not stored as telemetry). A report is then parsed
strictly: no other members, no duplicates, each member of its type, the result code matching
the outcome; anything else is a 400 and nothing is recorded. Pure functions, no I/O.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass

from ._errors import BadRequest

__all__ = ["OUTCOMES", "REPORT_MAX", "REPORT_SCHEMA", "Report", "body_digest", "parse_report"]

REPORT_MAX = 255  # SAFE2 C1 data: at most 255 bytes
REPORT_VERSION = 1
OUTCOMES = ("applied", "unchanged", "rejected", "rolled_back", "confirmed")
FAILED_OUTCOMES = ("rejected", "rolled_back")
# the result codes of lib/provision.py: 0 applied, 1 unchanged, 2.. a refusal (40/41/42 today)
_CODE_OF = {"applied": (0, 0), "unchanged": (1, 1), "confirmed": (0, 0),
            "rolled_back": (0, 0), "rejected": (2, 255)}
_DIGEST = re.compile(r"crc32:[0-9a-f]{8}")
_VERSION = re.compile(r'[\x20-\x7e]{1,32}')  # printable ASCII (without " and \: below)
_FIELDS = ("v", "digest", "outcome", "code", "rejected", "version")
_REQUIRED = ("v", "digest", "outcome", "code")
_REPORT_PREFIX = b'{"v"'


_S_DIGEST = {"type": "string", "pattern": "^crc32:[0-9a-f]{8}$"}
_S_VERSION = {"type": "string", "pattern": "^[ !#-\\[\\]-~]{1,32}$",
              "description": "printable ASCII without \" and \\"}


def _variant(outcomes: list[str], code: dict[str, object], nullable: bool,
             rejected: bool = False) -> dict[str, object]:
    props: dict[str, object] = {
        "v": {"const": REPORT_VERSION}, "outcome": {"enum": outcomes}, "code": code,
        "digest": {"anyOf": [_S_DIGEST, {"type": "null"}]} if nullable else _S_DIGEST,
        "version": _S_VERSION}
    if rejected:
        props["rejected"] = _S_DIGEST
    return {"type": "object", "properties": props, "required": list(_REQUIRED),
            "additionalProperties": False}


# The report as JSON Schema (the telemetry route's request schema, /openapi.json): what
# parse_report accepts, the result code tied to the outcome.
REPORT_SCHEMA: dict[str, object] = {
    "description": "a device report (issue 17): the digest of the body in force "
                   "(crc32: + zlib.crc32 in hex), the outcome and its result code",
    "oneOf": [
        _variant(["applied", "confirmed"], {"const": 0}, False),
        _variant(["unchanged"], {"const": 1}, False),
        _variant(["rolled_back"], {"const": 0}, True),
        _variant(["rejected"], {"type": "integer", "minimum": 2, "maximum": 255}, True,
                 rejected=True),
    ]}


def body_digest(body: bytes) -> str:
    """How the device names a body: ``crc32:`` + zlib.crc32 in 8 lowercase hex digits (the
    SAMD21 build has no hashlib; lib/config.py computes the same CRC). Not a security check:
    it only tells whether the device holds the body the service delivered."""
    return f"crc32:{zlib.crc32(body):08x}"


@dataclass(frozen=True)
class Report:
    """One parsed report; ``digest`` None: no configuration in force on the device."""

    digest: str | None
    outcome: str
    code: int
    rejected: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"digest": self.digest, "outcome": self.outcome,
                                  "code": self.code}
        if self.rejected is not None:
            out["rejected"] = self.rejected
        if self.version is not None:
            out["version"] = self.version
        return out


def _bad(detail: str) -> BadRequest:
    return BadRequest(f"device report: {detail}", code="invalid_report")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key[:20]!r} given twice")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _parse_float(text: str) -> float | int:
    # as the request parser (_http): JSON Schema counts 1.0 as the integer 1
    value = float(text)
    return int(value) if value.is_integer() and abs(value) <= 2**53 else value


def _load(body: bytes) -> object:
    return json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates,
                      parse_constant=_no_constant, parse_float=_parse_float)


def parse_report(body: bytes) -> Report | None:
    """The report in a telemetry body; None when the body is plain telemetry.

    Raises:
        BadRequest: (``invalid_report``) the body is a report, but not a valid one.
    """
    stripped = body.lstrip(b" \t\r\n")
    if not stripped.startswith(b"{"):
        return None
    claimed = body.startswith(_REPORT_PREFIX)
    try:
        doc = _load(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if claimed:
            raise _bad(f"not valid JSON: {exc}") from None
        return None
    if not isinstance(doc, dict) or "v" not in doc:
        return None
    if len(body) > REPORT_MAX:
        raise _bad(f"{len(body)} bytes; a report is at most {REPORT_MAX} (SAFE2 C1)")
    return _check(doc)


def _check(doc: dict[str, object]) -> Report:
    unknown = sorted(set(doc) - set(_FIELDS))
    if unknown:
        raise _bad(f"unknown member(s) {', '.join(k[:20] for k in unknown)}")
    missing = [k for k in _REQUIRED if k not in doc]
    if missing:
        raise _bad(f"missing member(s) {', '.join(missing)}")
    v = doc["v"]
    if type(v) is not int or v != REPORT_VERSION:
        raise _bad(f"v must be {REPORT_VERSION} (the report format this service reads)")
    outcome = doc["outcome"]
    if outcome not in OUTCOMES:
        raise _bad(f"outcome must be one of {', '.join(OUTCOMES)}")
    assert isinstance(outcome, str)
    code = doc["code"]
    lo, hi = _CODE_OF[outcome]
    if type(code) is not int or not lo <= code <= hi:
        want = str(lo) if lo == hi else f"{lo}..{hi}"
        raise _bad(f"code must be an integer {want} with outcome {outcome}")
    digest = _digest(doc["digest"], "digest", nullable=outcome in FAILED_OUTCOMES)
    rejected = None
    if "rejected" in doc:
        if outcome != "rejected":
            raise _bad("rejected is only given with outcome rejected")
        rejected = _digest(doc["rejected"], "rejected", nullable=False)
    version = doc.get("version")
    if version is not None and (not isinstance(version, str) or not _VERSION.fullmatch(version)
                                or '"' in version or "\\" in version):
        raise _bad('version must be 1-32 printable ASCII characters without " and \\')
    if "version" in doc and version is None:
        raise _bad("version is left out, never null")
    return Report(digest=digest, outcome=outcome, code=code, rejected=rejected,
                  version=version)


def _digest(value: object, name: str, *, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        extra = " or null" if nullable else ""
        raise _bad(f"{name} must be crc32: and 8 lowercase hex digits{extra}")
    return value
