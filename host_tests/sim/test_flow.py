"""SAFE2 applet end to end in memory: the card's proactive commands carried out by the
modem's toolkit terminal (ztp.modem.ToolkitTerminal) against the real ztp.tls server engine
and a tiny HTTP responder."""

from __future__ import annotations

import pytest
from ztp import stk
from ztp.sim import AppletStatus, ResultCode

from ._terminal import DNS_SERVER, DnsServer, HttpsServer, Terminal, http_response
from .conftest import DEVICE_ID, EF_ICCID, PSK, make_sim

CONFIG = (
    b'{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'
)


class World:
    """SIM + terminal + gateway; ``handler`` answers the HTTP request."""

    def __init__(self, host="192.0.2.10", port=8443, handler=None, keys=None, **kw):
        self.sim = make_sim(host, port, **kw)
        self.log: list = []
        self.requests: list[bytes] = []
        self.handler = handler or (lambda req: http_response(200, CONFIG))
        self.keys = keys if keys is not None else {EF_ICCID: PSK}
        self.gateway_up = True

        def https():
            return HttpsServer(self.keys, self._handle, self.log)

        servers = {("192.0.2.10", 8443): https}
        self.dns_names = {"gw.example.net": "192.0.2.10"}
        servers[(str(DNS_SERVER), 53)] = lambda: DnsServer(self.dns_names, self.log)
        self._servers = servers
        self.term = Terminal(self.sim, _Switch(self))
        self.term.start()
        self.ch = 0

    def _handle(self, req: bytes) -> bytes:
        self.requests.append(req)
        return self.handler(req)

    def open_select(self) -> None:
        r = self.term.host("00 70 00 00 01")
        assert r[-2:] == b"\x90\x00"
        self.ch = r[0]
        r = self.term.host(f"0{self.ch} A4 04 0C 0C F0 70 6F 64 67 73 61 66 65 32 01 01")
        assert r == b"\x90\x00"
        r = self.term.host(f"0{self.ch} DA 02 C0 10 " + DEVICE_ID.hex())
        assert r == b"\x90\x00"

    def status(self) -> tuple[int, int]:
        r = self.term.host(f"0{self.ch} CC 02 00 00")
        assert r[-2:] in (b"\x61\x04",), r.hex()
        r = self.term.host(f"0{self.ch} C0 00 00 04")
        assert r[-2:] == b"\x90\x00" or r[-2] == 0x91
        return int.from_bytes(r[:2], "big"), int.from_bytes(r[2:4], "big")

    def read(self) -> bytes:
        r = self.term.host(f"0{self.ch} CA 01 00 00")
        assert r[-2] == 0x61, r.hex()
        r = self.term.host(f"0{self.ch} C0 00 00 {r[-1]:02X}")
        assert r[-2:] == b"\x90\x00" or r[-2] == 0x91
        return r[:-2]

    def provision(self) -> tuple[int, int]:
        self.open_select()
        r = self.term.host(f"0{self.ch} CA 00 00 00")
        assert r[-2:] == b"\x90\x00" or r[-2] == 0x91
        self.term.run_until_idle()
        return self.status()


class _Switch(dict):
    """servers mapping that honours ``gateway_up``."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def get(self, key, default=None):
        if key[0] == "192.0.2.10" and not self.world.gateway_up:
            return default
        return self.world._servers.get(key, default)


def test_happy_path_ip_literal():
    w = World()
    assert w.provision() == (AppletStatus.DATA, 0)
    assert w.read() == CONFIG
    req = w.requests[0]
    assert req.startswith(
        b"GET /v1/config/" + DEVICE_ID.hex().encode() + b"?iccid=984405529081369836f5 HTTP/1.1\r\n"
    )
    assert b"\r\nHost: 192.0.2.10:8443\r\n" in req
    hs = [e for e in w.log if not isinstance(e, bytes | str)][0]
    assert hs.identity == EF_ICCID
    assert hs.key_exchange_mode.name == "PSK_KE"
    assert hs.cipher_suite.name == "TLS_AES_128_CCM_SHA256"
    assert hs.server_name is None
    # No DNS for an IP literal; every BIP channel closed at the end; timers cleaned up.
    kinds = [type(c).__name__ for c in w.term.commands]
    assert kinds.count("OpenChannel") == 1
    assert w.term.channels == {}
    assert w.sim.open_bip_channels == ()
    assert w.term.timers == {}
    ex = w.sim.exchanges[-1]
    assert (ex.http_status, ex.cipher_suite, ex.identity_hex) == (
        200,
        "TLS_AES_128_CCM_SHA256",
        EF_ICCID.hex(),
    )
    assert ex.bytes_sent > 0 and ex.bytes_received > 0
    assert w.sim.state.counters.successes == 1


def test_dns_then_tcp_with_sni():
    w = World(host="gw.example.net")
    assert w.provision() == (AppletStatus.DATA, 0)
    assert "gw.example.net" in w.log
    opens = [c for c in w.term.commands if isinstance(c, stk.OpenChannel)]
    assert opens[0].transport == stk.TransportProtocol.UDP_CLIENT_REMOTE
    assert opens[0].dns_request and opens[0].destination is None and opens[0].port == 53
    assert opens[1].transport == stk.TransportProtocol.TCP_CLIENT_REMOTE
    assert str(opens[1].destination) == "192.0.2.10"
    hs = [e for e in w.log if isinstance(e, object) and hasattr(e, "server_name")][0]
    assert hs.server_name == "gw.example.net"
    assert b"\r\nHost: gw.example.net:8443\r\n" in w.requests[0]


def test_unknown_name_is_a_permanent_error():
    w = World(host="nowhere.example.net")
    assert w.provision() == (AppletStatus.ERROR, ResultCode.DNS_NOT_FOUND)
    assert w.sim.open_bip_channels == () and w.term.channels == {}


def test_wrong_psk_ends_in_tls_error_without_retry():
    w = World(keys={EF_ICCID: bytes(16)})
    status, result = w.provision()
    assert status == AppletStatus.ERROR
    assert result == ResultCode.TLS_ALERT_RECEIVED | 51  # decrypt_error
    assert len(w.sim.exchanges) == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [(404, (AppletStatus.ERROR, 404)), (403, (AppletStatus.ERROR, 403)), (204, (3, 0))],
)
def test_http_statuses_map_to_result_codes(status, expected):
    w = World(handler=lambda req: http_response(status, reason="X"))
    assert w.provision() == expected
    assert len(w.requests) == 1  # definite answers are not retried


def test_body_of_254_bytes_delivered_whole():
    body = b"{" + b"x" * 252 + b"}"
    w = World(handler=lambda req: http_response(200, body))
    assert w.provision() == (AppletStatus.DATA, 0)
    assert w.read() == body


def test_body_over_255_bytes_is_an_error_state():
    w = World(handler=lambda req: http_response(200, b"y" * 256))
    assert w.provision() == (AppletStatus.ERROR, ResultCode.BODY_TOO_LARGE)
    r = w.term.host(f"0{w.ch} CA 01 00 00")
    assert r == b"\x69\x85"


def test_gateway_down_then_up_retries_with_backoff():
    w = World()
    w.gateway_up = False
    w.open_select()
    w.term.host(f"0{w.ch} CA 00 00 00")
    assert w.status() == (AppletStatus.BUSY, 0)
    # the backoff timer is running; bring the gateway up before it fires
    assert 2 in w.term.timers
    w.gateway_up = True
    w.term.run_until_idle()
    assert w.status() == (AppletStatus.DATA, 0)
    backoffs = [
        c.value_s for c in w.term.commands if isinstance(c, stk.TimerManagement) and c.timer_id == 2
    ]
    assert backoffs == [2]


def test_gateway_never_up_gives_up_after_bounded_attempts():
    w = World()
    w.gateway_up = False
    assert w.provision() == (AppletStatus.ERROR, ResultCode.UNREACHABLE)
    opens = [c for c in w.term.commands if isinstance(c, stk.OpenChannel)]
    assert len(opens) == 3  # RetryPolicy(max_attempts=3)
    backoffs = [
        c.value_s for c in w.term.commands if isinstance(c, stk.TimerManagement) and c.timer_id == 2
    ]
    assert backoffs == [2, 4]


def test_server_error_is_retried_then_reported():
    w = World(handler=lambda req: http_response(503, reason="Unavailable"))
    assert w.provision() == (AppletStatus.ERROR, 503)
    assert len(w.requests) == 3


def test_new_request_supersedes_unfinished_one():
    w = World()
    w.gateway_up = False
    w.open_select()
    w.term.host(f"0{w.ch} CA 00 00 00")
    assert w.status()[0] == AppletStatus.BUSY
    w.gateway_up = True
    w.handler = lambda req: http_response(200, b'{"second":1}')
    w.term.send(bytes.fromhex(f"0{w.ch}CA000000"))  # toolkit not run yet
    r = w.term.send(bytes.fromhex(f"0{w.ch}CC020004"))
    assert r[:4] == b"\x00\x01\x00\x00"  # busy: never a stale 0007
    w.term.run()
    w.term.run_until_idle()
    assert w.status() == (AppletStatus.DATA, 0)
    assert w.read() == b'{"second":1}'


def test_supersede_while_data_is_ready_clears_old_body():
    w = World()
    assert w.provision() == (AppletStatus.DATA, 0)
    w.gateway_up = False
    w.term.host(f"0{w.ch} CA 00 00 00")
    assert w.status() == (AppletStatus.BUSY, 0)
    assert w.term.host(f"0{w.ch} CA 01 00 00") == b"\x69\x85"


def test_watchdog_ends_a_silent_attempt():
    class Silent:
        def receive(self, data):
            return b"", False

    w = World()
    w._servers[("192.0.2.10", 8443)] = Silent
    status = w.provision()
    assert status == (AppletStatus.ERROR, ResultCode.TIMEOUT)
    assert w.sim.open_bip_channels == () and w.term.channels == {}


def test_telemetry_is_posted_before_the_config_request():
    w = World()
    w.open_select()
    r = w.term.host(f"0{w.ch} DA 02 C1 09 " + b'{"t":21.5}'[:9].hex())
    assert r[-2:] == b"\x90\x00" or r[-2] == 0x91
    w.term.run_until_idle()
    assert w.requests[0].startswith(b"POST /v1/data/" + DEVICE_ID.hex().encode())
    assert w.sim.state.telemetry is None
    w.term.host(f"0{w.ch} CA 00 00 00")
    w.term.run_until_idle()
    assert w.status() == (AppletStatus.DATA, 0)
    assert len(w.requests) == 2


def test_no_bip_terminal_profile():
    w = World()
    w.term.profile = bytes(17)
    w.term.start()
    assert w.provision() == (AppletStatus.ERROR, ResultCode.NO_BIP)


def test_91xx_seen_by_the_host():
    w = World()
    w.open_select()
    r = w.sim.transmit(bytes.fromhex(f"0{w.ch}CA000000"), 0)
    assert r[0] == 0x91 and r[1] > 0  # the card wants to OPEN CHANNEL


def test_reset_mid_request_reports_interrupted():
    w = World()
    w.gateway_up = False
    w.open_select()
    w.term.host(f"0{w.ch} CA 00 00 00")
    w.term.start()  # card reset + TERMINAL PROFILE
    w.open_select()
    assert w.status() == (AppletStatus.ERROR, ResultCode.INTERRUPTED)


def test_cost_model_accounts_crypto_and_transfer():
    w = World()
    w.provision()
    assert w.term.cost_ms > 500  # key schedule on a slow SIM dominates


def test_terminal_restart_mid_flow_starts_the_request_over():
    w = World()
    w.gateway_up = False
    w.open_select()
    w.term.host(f"0{w.ch} CA 00 00 00")
    assert w.status() == (AppletStatus.BUSY, 0)
    # the modem reboots without resetting the card: channels and timers are gone
    w.term.reboot()
    assert w.term.channels == {} and w.term.timers == {}
    w.gateway_up = True
    r = w.term.send(stk.build_terminal_profile_apdu(w.term.profile))
    assert r[-2] == 0x91  # the applet starts over at once
    w.term.run()
    w.term.run_until_idle()
    assert w.status() == (AppletStatus.DATA, 0)
    assert w.read() == CONFIG
    assert w.sim.state.counters.requests == 1


def test_lost_fetched_command_after_terminal_restart():
    w = World()
    w.open_select()
    r = w.term.send(bytes.fromhex(f"0{w.ch}CA000000"))
    n = r[-1]
    w.term.send(stk.build_fetch_apdu(n))  # fetched, never answered: the modem rebooted
    w.term.start()  # card reset this time
    w.open_select()
    assert w.status() == (AppletStatus.ERROR, ResultCode.INTERRUPTED)
    w.term.host(f"0{w.ch} CA 00 00 00")
    w.term.run_until_idle()
    assert w.status() == (AppletStatus.DATA, 0)


@pytest.mark.parametrize("chunk", [1, 5, 64, 200])
def test_small_receive_chunks(chunk):
    body = b"[" + b"7" * 200 + b"]"
    w = World(host="gw.example.net", handler=lambda req: http_response(200, body))
    w.term.max_chunk = chunk
    assert w.provision() == (AppletStatus.DATA, 0)
    assert w.read() == body


def test_terminal_refusing_the_dns_channel_is_retried_then_reported():
    # A terminal that cannot pick the DNS server itself (no data destination address given).
    w = World(host="gw.example.net")

    def refuse(cmd):
        if isinstance(cmd, stk.OpenChannel) and cmd.destination is None:
            return stk.TerminalResponse.for_command(
                cmd,
                stk.Result(stk.GeneralResult.REQUIRED_VALUES_MISSING),
                bearer=cmd.bearer,
                buffer_size=cmd.buffer_size,
            )
        return None

    w.term.tr_override = refuse
    assert w.provision() == (AppletStatus.ERROR, ResultCode.DNS_FAILED)
    assert w.sim.open_bip_channels == ()


class _Garbage:
    def receive(self, data):
        return b"\x16\x03\x03\x00\x02\xff\xff", False


def test_server_breaking_tls_ends_in_an_alert_we_sent():
    w = World()
    w._servers[("192.0.2.10", 8443)] = _Garbage
    status, result = w.provision()
    assert status == AppletStatus.ERROR
    assert result & 0xFF00 == ResultCode.TLS_ALERT_SENT
    assert w.sim.open_bip_channels == ()


def test_bytes_after_the_body_are_malformed():
    w = World(handler=lambda req: http_response(200, b"{}") + b"junk")
    assert w.provision() == (AppletStatus.ERROR, ResultCode.HTTP_MALFORMED)


def test_link_dropped_before_the_response_is_retried():
    calls = []

    def handler(req):
        calls.append(req)
        if len(calls) == 1:
            return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"  # cut short, then close
        return http_response(200, b"{}")

    w = World(handler=handler)
    assert w.provision() == (AppletStatus.DATA, 0)
    assert len(calls) == 2
    assert w.sim.exchanges[0].result == ResultCode.LINK_DROPPED


def test_no_secret_in_logs(caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    w = World(host="gw.example.net")
    w.provision()
    text = caplog.text
    assert PSK.hex() not in text and PSK.hex().upper() not in text
    assert "psk" not in repr(w.sim.state).lower()


# ---------------------------------------------------------------- fewer toolkit APDUs


def _request_now(w: World) -> tuple[int, int]:
    """CA 00 and the toolkit run with no time passing (the DNS TTL timer keeps running)."""
    r = w.term.host(f"0{w.ch} CA 00 00 00")
    assert r[-2:] == b"\x90\x00" or r[-2] == 0x91
    w.term.run()
    return w.status()


def _opens(w: World, since: int = 0) -> list[stk.TransportProtocol]:
    return [c.transport for c in w.term.commands[since:] if isinstance(c, stk.OpenChannel)]


def test_dns_answer_cached_for_its_ttl_by_timer_3():
    w = World(host="gw.example.net")
    w.open_select()
    assert _request_now(w) == (AppletStatus.DATA, 0)
    udp, tcp = stk.TransportProtocol.UDP_CLIENT_REMOTE, stk.TransportProtocol.TCP_CLIENT_REMOTE
    assert _opens(w) == [udp, tcp]
    ttl = [c for c in w.term.commands if isinstance(c, stk.TimerManagement) and c.timer_id == 3]
    assert [(c.action, c.value_s) for c in ttl] == [(stk.TimerAction.START, 60)]  # DNS TTL
    assert w.sim.open_bip_channels == ()
    n = len(w.term.commands)
    assert _request_now(w) == (AppletStatus.DATA, 0)
    assert _opens(w, n) == [tcp]  # no DNS exchange: 9 APDUs and one RTT fewer
    w.term.advance(60_000)  # TIMER EXPIRATION 3: the answer is stale
    n = len(w.term.commands)
    assert _request_now(w) == (AppletStatus.DATA, 0)
    assert _opens(w, n) == [udp, tcp]
    assert len(w.requests) == 3


def test_dns_cache_dropped_by_terminal_restart_and_reset():
    w = World(host="gw.example.net")
    w.open_select()
    assert _request_now(w) == (AppletStatus.DATA, 0)
    # TERMINAL PROFILE again without a reset: the modem restarted, its timers are gone
    w.term.reboot()
    assert w.term.send(stk.build_terminal_profile_apdu(w.term.profile))[-2:] == b"\x90\x00"
    n = len(w.term.commands)
    assert _request_now(w) == (AppletStatus.DATA, 0)
    assert _opens(w, n)[0] == stk.TransportProtocol.UDP_CLIENT_REMOTE
    w.sim.reset()
    assert w.sim.dns_cache.get("gw.example.net") is None


def test_cached_address_unreachable_resolves_again():
    w = World(host="gw.example.net")
    w.open_select()
    assert _request_now(w) == (AppletStatus.DATA, 0)
    w.gateway_up = False
    n = len(w.term.commands)
    r = w.term.host(f"0{w.ch} CA 00 00 00")
    assert r[-2] == 0x91
    w.term.run()
    w.gateway_up = True
    w.term.advance(2000)  # backoff timer 2
    assert w.status() == (AppletStatus.DATA, 0)
    udp, tcp = stk.TransportProtocol.UDP_CLIENT_REMOTE, stk.TransportProtocol.TCP_CLIENT_REMOTE
    assert _opens(w, n) == [tcp, udp, tcp]


def test_watchdog_armed_at_first_wait_and_outcome_before_teardown():
    w = World(host="gw.example.net")
    seen: list[tuple[str, int]] = []

    def spy(cmd):
        seen.append((type(cmd).__name__, w.sim.state.status))
        return None

    w.term.tr_override = spy
    w.open_select()
    assert _request_now(w) == (AppletStatus.DATA, 0)
    kinds = [k for k, _ in seen]
    # the watchdog and the DNS channel's close wait for the network's answers
    assert kinds[:3] == ["OpenChannel", "SendData", "TimerManagement"]
    assert kinds[3:9] == [
        "ReceiveData", "OpenChannel", "SendData", "CloseChannel", "TimerManagement",
        "ReceiveData",
    ]
    # close_notify, CLOSE CHANNEL and the watchdog's deactivation come after DATA is shown
    assert kinds[-3:] == ["SendData", "CloseChannel", "TimerManagement"]
    assert [s for _, s in seen[-3:]] == [AppletStatus.DATA] * 3
    assert w.sim.exchanges[-1].http_status == 200
    assert w.term.timers.keys() == {3}  # only the DNS answer's TTL still runs
