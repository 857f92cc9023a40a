# ztp: host-only (hypothesis; the MicroPython runner skips this file)
"""check_json (lib/config.py) agrees with CPython's json on generated and mutated documents.

CPython's json is the reference for RFC 8259 syntax, with two known departures: it takes NaN,
Infinity and -Infinity (not JSON, RFC 8259 §6), which `strict_loads` refuses, and it has no
nesting limit, where check_json stops at 16 levels (RFC 8259 §9 allows a limit). Bounded:
documents are short, 200-300 examples per property."""

from __future__ import annotations

import json
from typing import Any

import config
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROFILE = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
MAX_DEPTH = 16


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(doc: bytes) -> Any:
    """CPython's json without its NaN/Infinity extension; ValueError if doc is not JSON."""
    return json.loads(doc.decode("utf-8"), parse_constant=_no_constant)


def depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


def check(doc: bytes) -> str | None:
    """None if check_json accepts doc, else its message."""
    try:
        config.check_json(doc, len(doc))
    except config.ConfigError as e:
        return str(e)
    return None


def agree(doc: bytes) -> None:
    try:
        doc.decode("utf-8")
    except UnicodeDecodeError:
        # UTF-8 (RFC 8259 §8.1) is parse_config's decode step, before check_json
        if 0 < len(doc) <= 255:
            with pytest.raises(config.ConfigError, match="not UTF-8"):
                config.parse_config(doc)
        return
    got = check(doc)
    try:
        v = strict_loads(doc)
    except (ValueError, RecursionError):     # JSONDecodeError is a ValueError
        assert got is not None, f"check_json took {doc!r}, CPython's json does not"
        assert got.startswith("body is not valid JSON: ") and " at byte " in got
        return
    if depth(v) > MAX_DEPTH:
        assert got is not None and "nested deeper than 16" in got, doc
    else:
        assert got is None, f"check_json refused {doc!r} ({got}), CPython's json takes it"


scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=12)
WS = st.sampled_from(["", " ", "\t", "\n", "\r\n", "  "])


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    v = draw(values)
    ascii_only = draw(st.booleans())
    sep = (draw(WS) + "," + draw(WS), draw(WS) + ":" + draw(WS))
    indent = draw(st.none() | st.integers(0, 2))
    text = json.dumps(v, ensure_ascii=ascii_only, separators=sep, indent=indent)
    return (draw(WS) + text + draw(WS)).encode("utf-8")


# bytes that matter to a JSON scanner, and a few that must never be taken
TOKEN_BYTES = b'{}[]:,"\\ \t\n\r0123456789-+.eEtrufalsnbu/\x00\x0b\x0c\x7f\xa0\xff'
mutation = st.tuples(st.sampled_from(["insert", "delete", "replace", "swap"]),
                     st.integers(0, 10_000),
                     st.sampled_from(list(TOKEN_BYTES)) | st.integers(0, 255))


def mutate(doc: bytes, edits: list[tuple[str, int, int]]) -> bytes:
    b = bytearray(doc)
    for kind, pos, byte in edits:
        p = pos % (len(b) + 1)
        if kind == "insert":
            b.insert(p, byte)
        elif b and p < len(b):
            if kind == "delete":
                del b[p]
            elif kind == "replace":
                b[p] = byte
            elif p + 1 < len(b):
                b[p], b[p + 1] = b[p + 1], b[p]
    return bytes(b)


@PROFILE
@given(documents())
def test_generated_documents_agree_with_cpython(doc: bytes) -> None:
    agree(doc)


@PROFILE
@given(documents(), st.lists(mutation, min_size=1, max_size=3))
def test_mutated_documents_agree_with_cpython(doc: bytes, edits: list) -> None:
    agree(mutate(doc, edits))


@PROFILE
@given(st.lists(st.sampled_from(list(TOKEN_BYTES)), max_size=40).map(bytes))
def test_token_soup_agrees_with_cpython(doc: bytes) -> None:
    agree(doc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_config_error(doc: bytes) -> None:
    # the whole parse path: a Config or ConfigError, nothing else, whatever the bytes
    try:
        config.parse_config(doc)
    except config.ConfigError:
        pass


@pytest.mark.parametrize("n", [15, 16, 17, 40])
def test_nesting_limit(n: int) -> None:
    doc = b"[" * n + b"]" * n
    assert (check(doc) is None) == (n <= MAX_DEPTH)
    doc = b'{"a":' * n + b"1" + b"}" * n
    assert (check(doc) is None) == (n <= MAX_DEPTH)
