"""SIM Toolkit terminal core (sans-I/O): profile, FETCH on 91xx, BIP commands, events, timers."""

from __future__ import annotations

import ipaddress

from ztp import stk
from ztp.modem import TERMINAL_PROFILE, CloseLink, OpenLink, SendLink, ToolkitTerminal
from ztp.modem._terminal import NEED_DATA
from ztp.stk import (
    BipError,
    ChannelStatus,
    CloseChannel,
    EventDownload,
    GeneralResult,
    GetChannelStatus,
    OpenChannel,
    ReceiveData,
    SendData,
    TimerAction,
    TimerExpiration,
    TimerManagement,
    TransportProtocol,
)

SERVER = ipaddress.IPv4Address("127.0.0.1")
DNS = ipaddress.IPv4Address("10.0.0.53")


def started() -> ToolkitTerminal:
    term = ToolkitTerminal(dns_servers=(DNS,))
    term.start()
    apdu = term.pending_apdu()
    assert apdu == stk.build_terminal_profile_apdu(TERMINAL_PROFILE)
    term.card_response(b"\x90\x00", 0)
    assert term.pending_apdu() is None
    return term


def fetch(term: ToolkitTerminal, cmd: stk.ProactiveCommand, now_ms: int = 0) -> None:
    """The card announces ``cmd`` with 91xx; the terminal FETCHes it."""
    raw = stk.build_proactive_command(cmd)
    term.card_answer_seen(b"\x91" + bytes([len(raw)]))
    assert term.pending_apdu() == stk.build_fetch_apdu(len(raw))
    term.card_response(raw + b"\x90\x00", now_ms)


def terminal_response(term: ToolkitTerminal) -> stk.TerminalResponse:
    apdu = term.pending_apdu()
    assert apdu is not None and apdu[:4] == bytes.fromhex("80140000"), apdu
    term.card_response(b"\x90\x00", 0)
    return stk.parse_terminal_response(apdu[5:])


def envelope(term: ToolkitTerminal) -> stk.Envelope:
    apdu = term.pending_apdu()
    assert apdu is not None and apdu[:4] == bytes.fromhex("80C20000"), apdu
    term.card_response(b"\x90\x00", 0)
    return stk.parse_envelope(apdu[5:])


def open_tcp(term: ToolkitTerminal, buffer_size: int = 1000) -> int:
    fetch(term, OpenChannel(1, buffer_size, TransportProtocol.TCP_CLIENT_REMOTE, 443, SERVER))
    assert term.pending_apdu() is None  # waiting for the connection
    action = term.next_event()
    assert isinstance(action, OpenLink)
    assert (action.address, action.port) == (SERVER, 443)
    term.link_opened(action.channel)
    tr = terminal_response(term)
    assert tr.result.general == GeneralResult.PERFORMED_SUCCESSFULLY
    assert tr.channel_status == (ChannelStatus(action.channel, True),)
    assert tr.buffer_size == buffer_size
    return action.channel


def test_profile_announces_bip_tcp_udp_and_timers() -> None:
    features, channels = stk.parse_terminal_profile(TERMINAL_PROFILE)
    for f in (*stk.BIP_FEATURES, stk.Feature.TIMER_MANAGEMENT, stk.Feature.TIMER_EXPIRATION):
        assert f in features
    assert channels == 7


def test_tcp_session_send_receive_close() -> None:
    term = started()
    ch = open_tcp(term)
    fetch(term, SendData(2, ch, b"part1-", immediate=False))
    assert terminal_response(term).channel_data_length == 255
    assert term.next_event() is NEED_DATA  # stored, not sent
    fetch(term, SendData(3, ch, b"part2"))
    assert term.next_event() == SendLink(ch, b"part1-part2")
    assert terminal_response(term).result.ok
    term.link_data(ch, b"x" * 300)
    ev = envelope(term)
    assert ev == EventDownload(stk.Event.DATA_AVAILABLE, ChannelStatus(ch, True), 255)
    term.link_data(ch, b"y")  # no second event while the buffer is not drained
    assert term.pending_apdu() is None
    fetch(term, ReceiveData(4, ch, 237))
    tr = terminal_response(term)
    assert tr.channel_data == b"x" * 237 and tr.channel_data_length == 64
    fetch(term, ReceiveData(5, ch, 200))
    tr = terminal_response(term)
    assert tr.result.general == GeneralResult.PERFORMED_MISSING_INFORMATION
    assert tr.channel_data == b"x" * 63 + b"y" and tr.channel_data_length == 0
    term.link_closed(ch)
    ev = envelope(term)
    assert ev == EventDownload(stk.Event.CHANNEL_STATUS,
                               ChannelStatus(ch, False, stk.CHANNEL_STATUS_LINK_DROPPED))
    fetch(term, CloseChannel(6, ch))
    assert term.next_event() == CloseLink(ch)
    assert terminal_response(term).result.ok
    assert term.open_channels == ()


def test_91xx_answer_to_tr_triggers_the_next_fetch() -> None:
    term = started()
    raw = stk.build_proactive_command(GetChannelStatus(1))
    term.card_answer_seen(b"\x91" + bytes([len(raw)]))
    assert term.pending_apdu() == stk.build_fetch_apdu(len(raw))
    term.card_response(raw + b"\x90\x00", 0)
    apdu = term.pending_apdu()
    assert apdu is not None and apdu[1] == 0x14
    nxt = stk.build_proactive_command(GetChannelStatus(2))
    term.card_response(b"\x91" + bytes([len(nxt)]), 0)
    assert term.pending_apdu() == stk.build_fetch_apdu(len(nxt))


def test_dns_channel_without_destination_goes_to_the_dns_server() -> None:
    term = started()
    fetch(term, OpenChannel(1, 512, TransportProtocol.UDP_CLIENT_REMOTE, 53, dns_request=True))
    action = term.next_event()
    assert action == OpenLink(1, TransportProtocol.UDP_CLIENT_REMOTE, DNS, 53)
    term.link_opened(1)
    assert terminal_response(term).dns_servers == (DNS,)


def test_open_channel_errors() -> None:
    term = started()
    fetch(term, OpenChannel(1, 512, TransportProtocol.TCP_SERVER, 80, SERVER))
    assert terminal_response(term).result.general == GeneralResult.BEYOND_TERMINAL_CAPABILITIES
    fetch(term, OpenChannel(2, 512, TransportProtocol.TCP_CLIENT_REMOTE, 80))
    assert terminal_response(term).result.general == GeneralResult.REQUIRED_VALUES_MISSING
    fetch(term, OpenChannel(3, 512, TransportProtocol.TCP_CLIENT_REMOTE, 80, SERVER))
    action = term.next_event()
    assert isinstance(action, OpenLink)
    term.link_failed(action.channel)
    tr = terminal_response(term)
    assert tr.result.general == GeneralResult.BIP_ERROR
    assert tr.result.additional == bytes([BipError.REMOTE_DEVICE_NOT_REACHABLE])
    assert term.open_channels == ()
    offline = ToolkitTerminal(bearer_available=lambda: False)
    offline.start()
    offline.pending_apdu()
    offline.card_response(b"\x90\x00", 0)
    fetch(offline, OpenChannel(1, 512, TransportProtocol.TCP_CLIENT_REMOTE, 80, SERVER))
    assert terminal_response(offline).result.general == GeneralResult.NETWORK_UNABLE_NOW


def test_buffer_size_reduced_is_performed_with_modification() -> None:
    term = started()
    fetch(term, OpenChannel(1, 60000, TransportProtocol.TCP_CLIENT_REMOTE, 80, SERVER))
    term.link_opened(1)
    tr = terminal_response(term)
    assert tr.result.general == GeneralResult.PERFORMED_WITH_MODIFICATION
    assert tr.buffer_size == 1500


def test_no_free_channel() -> None:
    term = started()
    for _ in range(7):
        open_tcp(term)
    fetch(term, OpenChannel(9, 100, TransportProtocol.TCP_CLIENT_REMOTE, 80, SERVER))
    tr = terminal_response(term)
    assert tr.result == stk.Result(GeneralResult.BIP_ERROR, bytes([BipError.NO_CHANNEL_AVAILABLE]))


def test_commands_on_unknown_or_dropped_channels() -> None:
    term = started()
    fetch(term, SendData(1, 3, b"x"))
    assert terminal_response(term).result.additional == bytes([BipError.CHANNEL_ID_NOT_VALID])
    ch = open_tcp(term)
    term.link_closed(ch)
    envelope(term)
    fetch(term, SendData(2, ch, b"x"))
    assert terminal_response(term).result.additional == bytes([BipError.CHANNEL_CLOSED])
    fetch(term, ReceiveData(3, ch, 10))
    assert terminal_response(term).result.additional == bytes([BipError.CHANNEL_CLOSED])
    fetch(term, GetChannelStatus(4))
    assert terminal_response(term).channel_status == (
        ChannelStatus(ch, False, stk.CHANNEL_STATUS_LINK_DROPPED),)


def test_events_of_a_closed_channel_are_not_sent_for_the_next_link_on_it() -> None:
    # the remote closes while the card is busy with commands: the card closes the channel
    # and opens the next link with the same channel number before the event could go
    term = started()
    ch = open_tcp(term)
    term.link_closed(ch)
    fetch(term, CloseChannel(2, ch))
    assert term.next_event() == CloseLink(ch)
    assert terminal_response(term).result.ok
    assert term.pending_apdu() is None  # the "link dropped" of the closed link is gone
    assert open_tcp(term) == ch
    assert term.pending_apdu() is None  # nothing would end the fresh connection
    term.link_data(ch, b"data")
    assert envelope(term) == EventDownload(stk.Event.DATA_AVAILABLE, ChannelStatus(ch, True), 4)


def test_no_envelope_inside_a_proactive_command() -> None:
    term = started()
    ch = open_tcp(term)
    fetch(term, OpenChannel(2, 100, TransportProtocol.TCP_CLIENT_REMOTE, 80, SERVER))
    term.link_data(ch, b"data")
    assert term.pending_apdu() is None  # the OPEN CHANNEL is still in progress
    term.link_opened(2)
    assert terminal_response(term).result.ok
    assert isinstance(envelope(term), EventDownload)


def test_envelope_retried_after_toolkit_busy() -> None:
    term = started()
    ch = open_tcp(term)
    term.link_data(ch, b"data")
    apdu = term.pending_apdu()
    term.card_response(b"\x93\x00", 10)
    assert term.pending_apdu() is None and term.timer() == 110
    term.handle_timer(110)
    assert term.pending_apdu() == apdu


def test_timer_management_and_expiration() -> None:
    term = started()
    fetch(term, TimerManagement(1, TimerAction.START, 1, 30), now_ms=1000)
    assert terminal_response(term).timer_id == 1
    assert term.timer() == 31000
    fetch(term, TimerManagement(2, TimerAction.GET_CURRENT_VALUE, 1), now_ms=11000)
    assert terminal_response(term).timer_value_s == 20
    fetch(term, TimerManagement(3, TimerAction.GET_CURRENT_VALUE, 2), now_ms=11000)
    assert terminal_response(term).result.general == 0x24
    term.handle_timer(30999)
    assert term.pending_apdu() is None
    term.handle_timer(31000)
    assert envelope(term) == TimerExpiration(1, 30)
    fetch(term, TimerManagement(4, TimerAction.START, 2, 5), now_ms=40000)
    terminal_response(term)
    fetch(term, TimerManagement(5, TimerAction.DEACTIVATE, 2), now_ms=42000)
    assert terminal_response(term).timer_value_s == 3
    assert term.timer() is None


def poll_interval(number: int, unit: int, interval: int) -> bytes:
    body = bytes([0x81, 3, number, 0x03, 0, 0x82, 2, 0x81, 0x82, 0x84, 2, unit, interval])
    return bytes([0xD0, len(body)]) + body


def test_poll_interval_then_status_polling() -> None:
    term = started()
    raw = poll_interval(1, 1, 30)  # 30 s
    term.card_answer_seen(b"\x91" + bytes([len(raw)]))
    term.pending_apdu()
    term.card_response(raw + b"\x90\x00", 1000)
    apdu = term.pending_apdu()
    assert apdu == bytes.fromhex("8014000010" "8103010300" "82028281" "830100" "8402011E")
    term.card_response(b"\x90\x00", 1000)
    assert term.timer() == 31000 and term.pending_apdu() is None
    term.handle_timer(31000)
    assert term.pending_apdu() == bytes.fromhex("80F2000C")
    term.card_response(b"\x91\x10", 31010)  # the card has something: FETCH next
    assert term.pending_apdu() == stk.build_fetch_apdu(0x10)
    assert term.timer() == 61010


def test_poll_interval_below_one_second_is_raised() -> None:
    term = started()
    raw = poll_interval(2, 2, 3)  # 0.3 s
    term.card_answer_seen(b"\x91" + bytes([len(raw)]))
    term.pending_apdu()
    term.card_response(raw + b"\x90\x00", 0)
    apdu = term.pending_apdu()
    assert apdu is not None and apdu.endswith(bytes.fromhex("84020101"))
    assert term.poll_interval_ms == 1000


def test_unsupported_proactive_command() -> None:
    term = started()
    # SET UP MENU (TS 102 223 §6.6.7, type 25): beyond this terminal.
    body = bytes.fromhex("8103012500" "82028182" "850100")
    raw = bytes([0xD0, len(body)]) + body
    term.card_answer_seen(b"\x91" + bytes([len(raw)]))
    term.pending_apdu()
    term.card_response(raw + b"\x90\x00", 0)
    tr = terminal_response(term)
    assert tr.details.type == 0x25
    assert tr.result.general == GeneralResult.BEYOND_TERMINAL_CAPABILITIES


def test_stop_closes_every_link() -> None:
    term = started()
    a, b = open_tcp(term), open_tcp(term)
    term.stop()
    assert [term.next_event(), term.next_event()] == [CloseLink(a), CloseLink(b)]
    assert term.open_channels == () and term.pending_apdu() is None
