"""One HTTPS exchange of the SAFE2 applet over a BIP TCP channel: TLS 1.3 PSK (RFC 8446, via
``ztp.tls``; psk_ke, TLS_AES_128_CCM_SHA256, no key share) carrying one HTTP/1.1 request.

    TCP    OPEN CHANNEL tcp host:port
    TLS    SEND DATA ClientHello; (data available) RECEIVE DATA ServerHello..Finished;
           SEND DATA client Finished + HTTP request (one flight)
    HTTP   (data available) RECEIVE DATA...; response complete ->
           SEND DATA close_notify; CLOSE CHANNEL

The outcome is handed to ``on_response`` as soon as the response is complete and checked;
close_notify and CLOSE CHANNEL follow while the device already reads it. The crypto the card
does is counted in ``CryptoWork`` by ``_CountingConnection`` (the owner turns it into time).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Final

from ztp import stk, tls
from ztp.stk import CloseChannel, TransportProtocol

from ._bip import BipLink, Resume, Yield
from ._http import BodyTooLarge, HttpError, HttpResponse, ResponseReader, build_request
from ._job_state import JobState
from ._request import Config, CryptoWork, ExchangeRecord, JobFailure, Request, ResultCode
from ._state import MAX_BODY, ip_literal

__all__ = ["HttpsExchange", "transient_http"]

_TCP_BUFFER: Final = 1400
_MAX_POST_RESPONSE: Final = 1024
# Card-side crypto per handshake (SAFE2-PROTOCOL.md "Public sizes and costs"), in SHA-256
# compressions: early secret, binder key, binder HMAC, hello hash / handshake and master
# secrets, traffic keys, both Finished.
_SHA256_BLOCKS_HELLO: Final = 40
_SHA256_BLOCKS_HANDSHAKE: Final = 70

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def transient_http(status: int) -> bool:
    """An HTTP status worth a retry (RFC 9110 §15.5.9 408, 425, 429, 5xx)."""
    return status in (408, 425, 429) or status >= 500


class _CountingConnection:
    """``tls.ClientConnection`` that counts the card's crypto: AES blocks per byte
    protected or unprotected (two passes under CCM), SHA-256 blocks per key-schedule step."""

    def __init__(self, conn: tls.ClientConnection, work: CryptoWork) -> None:
        self.conn = conn
        self._work = work

    @staticmethod
    def _aes_blocks(n: int) -> int:
        return 2 * (n // 16 + 1)

    def start_handshake(self) -> None:
        self.conn.start_handshake()
        self._work.sha256_blocks += _SHA256_BLOCKS_HELLO

    def receive_data(self, data: bytes) -> None:
        self._work.aes_blocks += self._aes_blocks(len(data))
        self.conn.receive_data(data)

    def data_to_send(self) -> bytes:
        data = self.conn.data_to_send()
        if data:
            self._work.aes_blocks += self._aes_blocks(len(data))
        return data

    def next_event(self) -> object:
        event = self.conn.next_event()
        if isinstance(event, tls.HandshakeComplete):
            self._work.sha256_blocks += _SHA256_BLOCKS_HANDSHAKE
        return event


@dataclass
class _Record:
    req: Request
    address: str
    port: int
    identity_hex: str
    key_exchange_mode: str | None = None
    cipher_suite: str | None = None
    bytes_sent: int = 0
    bytes_received: int = 0
    http_status: int | None = None
    result: int = 0

    def freeze(self) -> ExchangeRecord:
        return ExchangeRecord(
            self.req.method, self.req.target, self.address, self.port, self.identity_hex,
            self.key_exchange_mode, self.cipher_suite, self.bytes_sent, self.bytes_received,
            self.http_status, self.result,
        )


class HttpsExchange:
    """One request on its own TLS connection.

    Args:
        link: the job's BIP commands. config: card data. req: the request. address: the
            gateway's address. body: the POST body (read when the request goes out).
        rng: TLS randomness. work: the card's crypto tally.
        enter: the job's ``_set_state`` (CONNECT, HANDSHAKE, HTTP, TEARDOWN).
        on_response: called with the checked response before the teardown.
        exchanges: where the connection's ``ExchangeRecord`` goes (also on failure).
    """

    def __init__(
        self,
        link: BipLink,
        config: Config,
        req: Request,
        address: Address,
        *,
        body: Callable[[], bytes | None],
        rng: Callable[[int], bytes],
        work: CryptoWork,
        enter: Callable[[JobState], None],
        on_response: Callable[[HttpResponse], None],
        exchanges: list[ExchangeRecord],
    ) -> None:
        self._link, self._cfg, self._req, self._address = link, config, req, address
        self._body, self._rng, self._work = body, rng, work
        self._enter, self._on_response, self._exchanges = enter, on_response, exchanges
        self._record = _Record(req, str(address), config.port, config.ef_iccid.hex())
        self._reader = ResponseReader(MAX_BODY if req.method == "GET" else _MAX_POST_RESPONSE)

    def run(self) -> Generator[Yield, Resume, HttpResponse]:
        """Raises JobFailure; the caller then closes the channels."""
        cfg = self._cfg
        self._enter(JobState.CONNECT)
        channel = yield from self._link.open(
            TransportProtocol.TCP_CLIENT_REMOTE, self._address, cfg.port, _TCP_BUFFER,
            ResultCode.UNREACHABLE,
        )
        conn = _CountingConnection(
            tls.ClientConnection(
                tls.ClientConfig(
                    identity=cfg.ef_iccid,
                    psk=cfg.psk,
                    server_name=None if ip_literal(cfg.host) else cfg.host,
                    cipher_suites=(tls.CipherSuite.TLS_AES_128_CCM_SHA256,),
                    key_exchange_modes=(tls.KeyExchangeMode.PSK_KE,),
                    send_key_share=False,
                ),
                rng=self._rng,
            ),
            self._work,
        )
        try:
            dropped = yield from self._talk(conn, channel)
        except JobFailure as f:
            self._record.result = f.code
            self._close_record(conn)
            raise
        return (yield from self._teardown(conn, channel, dropped))

    def _talk(self, conn: _CountingConnection, channel: int) -> Generator[Yield, Resume, bool]:
        """Handshake and request/response; returns whether the server closed the link."""
        self._enter(JobState.HANDSHAKE)
        conn.start_handshake()
        yield from self._flush(conn, channel)
        dropped = False
        while self._reader.response is None:
            ev = yield from self._link.wait_event(channel)
            if ev.event == stk.Event.DATA_AVAILABLE:
                conn.receive_data((yield from self._link.receive(channel, ev.data_length or 0)))
            elif not ev.channel_status.established:
                dropped = True
                conn.conn.receive_data(b"")
            yield from self._drain(conn, channel)
            if dropped and self._reader.response is None:
                raise JobFailure(ResultCode.LINK_DROPPED, True, "connection closed early")
        return dropped

    def _teardown(
        self, conn: _CountingConnection, channel: int, dropped: bool
    ) -> Generator[Yield, Resume, HttpResponse]:
        # Done: close_notify (RFC 8446 §6.1), then CLOSE CHANNEL. The server may have closed
        # already; errors here do not change the outcome, which is published first.
        response = self._reader.response
        assert response is not None
        self._record.http_status = response.status
        if response.status not in (200, 204):
            self._record.result = response.status
        self._enter(JobState.TEARDOWN)
        conn.conn.close()
        tail = conn.data_to_send()
        self._close_record(conn)
        self._on_response(response)
        if tail and not dropped:
            try:
                yield from self._link.send(channel, tail)
            except JobFailure:
                pass
        if channel in self._link.open_channels():
            yield from self._link.issue(CloseChannel(1, channel))
        if transient_http(response.status):
            raise JobFailure(response.status, True, f"HTTP {response.status}")
        return response

    def _close_record(self, conn: _CountingConnection) -> None:
        self._record.bytes_sent = conn.conn.bytes_sent
        self._record.bytes_received = conn.conn.bytes_received
        self._exchanges.append(self._record.freeze())

    def _request_bytes(self) -> bytes:
        cfg, req = self._cfg, self._req
        if req.method == "POST":
            body = self._body() or b""
            ctype = "application/json"
            if body[:1] not in (b"{", b"["):
                ctype = "application/octet-stream"
            return build_request("POST", req.target, cfg.host, cfg.port, body, ctype)
        return build_request("GET", req.target, cfg.host, cfg.port)

    def _flush(self, conn: _CountingConnection, channel: int) -> Generator[Yield, Resume, None]:
        data = conn.data_to_send()
        if data:
            yield from self._link.send(channel, data)

    def _drain(self, conn: _CountingConnection, channel: int) -> Generator[Yield, Resume, None]:
        while True:
            try:
                event = conn.next_event()
            except tls.Alert as alert:
                try:
                    yield from self._flush(conn, channel)
                except JobFailure:
                    pass
                code = ResultCode.TLS_ALERT_SENT | int(alert.description)
                raise JobFailure(code, False, f"TLS: {type(alert).__name__}") from None
            if event is tls.NEED_DATA:
                break
            if isinstance(event, tls.HandshakeComplete):
                self._record.key_exchange_mode = event.key_exchange_mode.name
                self._record.cipher_suite = event.cipher_suite.name
                self._enter(JobState.HTTP)
                conn.conn.send_application_data(self._request_bytes())
            elif isinstance(event, tls.ApplicationData):
                try:
                    self._reader.receive_data(event.data)
                except BodyTooLarge as e:
                    raise JobFailure(ResultCode.BODY_TOO_LARGE, False, str(e)) from None
                except HttpError as e:
                    raise JobFailure(ResultCode.HTTP_MALFORMED, False, str(e)) from None
            elif isinstance(event, tls.AlertReceived):
                code = ResultCode.TLS_ALERT_RECEIVED | (event.description & 0xFF)
                # internal_error (80): the server could not look the key up now; retry.
                raise JobFailure(code, event.description == 80, f"TLS alert {event.description}")
            elif isinstance(event, tls.ConnectionClosed):
                if self._reader.response is None:
                    raise JobFailure(ResultCode.LINK_DROPPED, True, "TLS closed before response")
                break
        yield from self._flush(conn, channel)
