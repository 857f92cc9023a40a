"""The applet's DNS and HTTP parsers: strict, bounded, only their own errors."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp.sim._dns import DnsError, NameNotFound, build_query, parse_answer
from ztp.sim._http import BodyTooLarge, HttpError, ResponseReader, build_request

QUERY = build_query(0x1234, "gw.example.net")


def answer(flags=0x8180, an=1, rdata=b"\xc0\x00\x02\x0a", qid=0x1234, question=None):
    q = question if question is not None else QUERY[12:]
    rr = b"\xc0\x0c" + struct.pack("!2HIH", 1, 1, 60, len(rdata)) + rdata
    return struct.pack("!6H", qid, flags, 1, an, 0, 0) + q + rr * an


def test_dns_query_wire():
    assert QUERY == bytes.fromhex("123401000001000000000000") + (
        b"\x02gw\x07example\x03net\x00" + b"\x00\x01\x00\x01"
    )


def test_dns_answer():
    assert parse_answer(answer(), QUERY) == (ipaddress.IPv4Address("192.0.2.10"),)


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        (answer(qid=1), "id"),
        (answer(flags=0x0100), "not a standard query response"),
        (answer(flags=0x8380), "TC"),
        (answer(flags=0x8182), "RCODE 2"),
        (answer(question=b"\x01x\x00\x00\x01\x00\x01"), "not ours"),
        (answer(rdata=b"\x01\x02"), "A record of 2"),
        (answer()[:-3], "runs past"),
        (answer()[:8], "shorter"),
        (answer().replace(b"\xc0\x0c", b"\xc0\xff"), "outside"),
        (answer().replace(b"\xc0\x0c", b"\xc0\x29"), "loop|too many|past"),
    ],
)
def test_dns_bad_answers(msg, error):
    with pytest.raises(DnsError, match=error):
        parse_answer(msg, QUERY)


def test_dns_not_found():
    with pytest.raises(NameNotFound):
        parse_answer(answer(flags=0x8183, an=0), QUERY)
    with pytest.raises(NameNotFound):
        parse_answer(answer(an=0), QUERY)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120))
def test_dns_garbage_raises_only_dns_error(tail):
    for msg in (tail, answer()[:20] + tail, QUERY[:2] + tail):
        try:
            parse_answer(msg, QUERY)
        except DnsError:
            pass


def test_request_wire():
    assert build_request("GET", "/v1/config/01?iccid=98", "gw", 443) == (
        b"GET /v1/config/01?iccid=98 HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n"
    )
    post = build_request("POST", "/v1/data/01", "10.0.0.1", 8443, b"{}")
    assert post.endswith(b"Content-Length: 2\r\n\r\n{}") and b"Host: 10.0.0.1:8443" in post
    with pytest.raises(ValueError):
        build_request("GET", "/a b", "gw", 443)


RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhello"


@pytest.mark.parametrize("split", [1, 3, 7, len(RESPONSE)])
def test_response_any_split(split):
    reader = ResponseReader(255)
    got = None
    for i in range(0, len(RESPONSE), split):
        got = reader.receive_data(RESPONSE[i : i + split])
    assert got is not None and got.status == 200 and got.body == b"hello"
    assert ("content-type", "x") in got.headers
    with pytest.raises(HttpError, match="after the end"):
        reader.receive_data(b"x")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
        (b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", "status code"),
        (b"HTTP/1.1 200 OK\r\n\r\n", "no Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "more than"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nbad header\r\nContent-Length: 0\r\n\r\n", "bad header"),
        (b"HTTP/1.1 204 No\r\nContent-Length: 3\r\n\r\nabc", "with a body"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nab", "after the 1-byte body"),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 3000, "longer than"),
    ],
)
def test_bad_responses(data, error):
    with pytest.raises(HttpError, match=error):
        ResponseReader(255).receive_data(data)


def test_body_limit_is_enforced_before_the_body_arrives():
    with pytest.raises(BodyTooLarge):
        ResponseReader(255).receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 256\r\n\r\n")
    ok = ResponseReader(255).receive_data(
        b"HTTP/1.1 200 OK\r\nContent-Length: 255\r\n\r\n" + b"x" * 255
    )
    assert ok is not None and len(ok.body) == 255


def test_eof_before_complete():
    reader = ResponseReader(255)
    reader.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    with pytest.raises(HttpError, match="before the response"):
        reader.eof()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_http_garbage_raises_only_http_error(data):
    try:
        ResponseReader(255).receive_data(data)
    except HttpError:
        pass
