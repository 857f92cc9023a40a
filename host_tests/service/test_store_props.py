"""Property tests of the service's input parsers: accept or raise BadRequest, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ztp.service._errors import BadRequest
from ztp.service._schemas import parse_body, parse_device_id, parse_identity_hex, parse_labels


@given(st.text(max_size=300), st.booleans())
def test_parse_body(text: str, require_json: bool) -> None:
    try:
        raw = parse_body(text, require_json=require_json)
    except BadRequest as exc:
        encoded = text.encode("utf-8", "surrogatepass")
        if exc.code == "body_too_long":
            assert len(encoded) > 254
        elif exc.code == "invalid_json":
            assert require_json
            with pytest.raises(ValueError):
                json.loads(text)
        else:
            assert text == "" or any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert raw == text.encode() and 1 <= len(raw) <= 254
    if require_json:
        json.loads(raw)


@given(st.one_of(st.text(max_size=140), st.binary(max_size=70).map(bytes.hex)))
def test_parse_device_id(value: str) -> None:
    try:
        out = parse_device_id(value, allow_default=True)
    except BadRequest:
        return
    assert out == "default" or (out == value.lower() and len(out) % 2 == 0 and
                                bytes.fromhex(out))


@given(st.text(alphabet="0123456789abcdefABCDEF", min_size=18, max_size=22))
def test_parse_identity_hex(value: str) -> None:
    try:
        out = parse_identity_hex(value)
    except BadRequest:
        return
    assert len(out) == 20 and out == value.lower()


@given(st.dictionaries(st.text(max_size=40), st.one_of(st.text(max_size=70), st.integers()),
                       max_size=20))
def test_parse_labels(value: dict) -> None:
    try:
        out = parse_labels(value)
    except BadRequest:
        return
    assert out == value and len(out) <= 16
