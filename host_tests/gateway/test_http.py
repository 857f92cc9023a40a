"""ztp.gateway._http: the one-request HTTP/1.1 reader (RFC 9112) and response writer."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ztp.gateway import NEED_DATA, HttpError, HttpLimits, Request, RequestReader, build_response

SIM_GET = (
    b"GET /v1/config/00112233445566778899aabbccddeeff?iccid=984405529081369836f5 HTTP/1.1\r\n\r\n"
)
POST = (
    b"POST /v1/data/0011?iccid=984405529081369836f5 HTTP/1.1\r\n"
    b"Host: gw.example\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"
    b'{"t": 21.5}'
)


def read_all(data: bytes, limits: HttpLimits | None = None) -> Request:
    r = RequestReader(limits)
    r.receive_data(data)
    ev = r.next_event()
    assert isinstance(ev, Request)
    return ev


def test_missing_host_tolerated():
    req = read_all(SIM_GET)
    assert req.method == "GET"
    assert req.target.startswith("/v1/config/0011")
    assert req.header("host") is None
    assert req.body == b""


def test_post_with_body_three_ways():
    whole = read_all(POST)
    assert whole.body == b'{"t": 21.5}'
    assert whole.header("Content-Type") == b"application/json"
    # one byte at a time: NEED_DATA until the last byte
    r = RequestReader()
    for i, b in enumerate(POST):
        assert r.next_event() is NEED_DATA, i
        r.receive_data(bytes([b]))
    assert r.next_event() == whole
    # trailing data is kept aside, not part of the request
    r = RequestReader()
    r.receive_data(POST + b"GET / HTTP/1.1\r\n\r\n")
    assert r.next_event() == whole
    assert r.trailing_data == b"GET / HTTP/1.1\r\n\r\n"


def test_bare_lf_and_http10_accepted():
    req = read_all(b"GET /x?iccid=1 HTTP/1.0\nUser-Agent: sim\n\n")
    assert req.http_version == "1.0"
    assert req.header("user-agent") == b"sim"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 40 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 5000, 431),
        (b"POST / HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET http://x/ HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nNo-colon\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
        (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\n\r\n", 400),
    ],
)
def test_refusals_name_the_status(data, status):
    r = RequestReader()
    r.receive_data(data)
    with pytest.raises(HttpError) as exc:
        r.next_event()
    assert exc.value.status == status
    # fail closed: the reader stays in ERROR
    with pytest.raises(HttpError):
        r.next_event()


def test_megabytes_of_garbage_end_in_bounded_error():
    r = RequestReader()
    with pytest.raises(HttpError) as exc:
        for _ in range(1024):
            r.receive_data(b"\x00" * 1024)
            r.next_event()
    assert exc.value.status in (414, 431)


def test_eof_inside_request():
    r = RequestReader()
    r.receive_data(POST[:-3])
    assert r.next_event() is NEED_DATA
    r.receive_data(b"")
    with pytest.raises(HttpError, match="closed after 8 of 11 body bytes"):
        r.next_event()


def test_build_response():
    assert build_response(200, b"abc", "application/octet-stream") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 3\r\n"
        b"Connection: close\r\n\r\nabc"
    )
    assert build_response(429, extra_headers=(("Retry-After", "6"),)).endswith(
        b"Connection: close\r\nRetry-After: 6\r\n\r\n"
    )
    with pytest.raises(ValueError):
        build_response(200, extra_headers=(("X", "a\r\nInjected: 1"),))
    with pytest.raises(ValueError):
        build_response(99)


@settings(settings.get_profile("gateway"))
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_http_error(data):
    r = RequestReader(HttpLimits(max_head=256, max_request_line=128))
    r.receive_data(data)
    try:
        r.next_event()
    except HttpError as exc:
        assert exc.status in (400, 413, 414, 431, 501, 505)


@settings(settings.get_profile("gateway"))
@given(st.lists(st.integers(min_value=0, max_value=len(POST)), max_size=8))
def test_random_splits_same_request(cuts):
    expected = read_all(POST)
    bounds = [0, *sorted(cuts), len(POST)]
    r = RequestReader()
    for a, b in zip(bounds, bounds[1:], strict=False):
        r.receive_data(POST[a:b])
    assert r.next_event() == expected
