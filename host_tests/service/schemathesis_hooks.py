"""Schemathesis hooks for ``test_schemathesis.py``: generators for the named string formats of
``/openapi.json``, the rules JSON Schema cannot state (docs/service.md, "API"):

- ``iccid``: 18-20 digits whose last is the Luhn check digit;
- ``config-body``: 1-254 bytes of UTF-8; ``json-text``: the same, and JSON;
- ``key-file-csv``: a SIM vendor's key file (header ``iccid,psk``, one row per SIM).

And one failure filter: a SIM just created has no OTA rotation, so its rotation
sub-resources (``/v1/sims/{iccid}/rotation``, ``.../retry``, ``.../cancel``) answer 404
``unknown_rotation``; the resource-availability check reads that as the SIM being gone.

Loaded by the Schemathesis CLI through its configuration (``hooks = ...``).
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import strategies as st
from ztp.iccid import luhn_check_digit

_DIGITS = st.text("0123456789", min_size=17, max_size=19)
ICCIDS = _DIGITS.map(lambda payload: payload + luhn_check_digit(payload))
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=254)
BODIES = _TEXT.filter(lambda text: len(text.encode("utf-8")) <= 254)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8,
)
JSON_BODIES = _JSON.map(lambda v: json.dumps(v, ensure_ascii=False)).filter(
    lambda text: len(text.encode("utf-8")) <= 254)
_HEX32 = st.binary(min_size=16, max_size=16).map(bytes.hex)
KEY_FILES = st.lists(ICCIDS, min_size=1, max_size=5, unique=True).flatmap(
    lambda iccids: st.lists(_HEX32, min_size=len(iccids), max_size=len(iccids)).map(
        lambda psks: "iccid,psk\n" + "".join(f"{i},{p}\n" for i, p in zip(iccids, psks,
                                                                          strict=True))))

schemathesis.openapi.format("iccid", ICCIDS)
schemathesis.openapi.format("config-body", BODIES)
schemathesis.openapi.format("json-text", JSON_BODIES)
schemathesis.openapi.format("key-file-csv", KEY_FILES)


_ROTATION_PATHS = ("/v1/sims/{iccid}/rotation", "/v1/sims/{iccid}/rotation/retry",
                   "/v1/sims/{iccid}/rotation/cancel")


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:  # noqa: ANN001
    """Keep every failure but "created resource not found" for a SIM's missing rotation."""
    del context
    if type(failure).__name__ != "EnsureResourceAvailability":
        return True
    if case.operation.path not in _ROTATION_PATHS or response.status_code != 404:
        return True
    try:
        return response.json().get("error") != "unknown_rotation"
    except ValueError:
        return True
