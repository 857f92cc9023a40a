"""The whole path, end to end: firmware lib/ -> pyserial pty -> virtual modem -> virtual SIM
-> BIP sockets (DNS, TCP, TLS 1.3 PSK) -> gateway -> service, and back."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ztp.demo import DEMO_CONFIG, DEMO_DEVICE_ID, DEMO_ICCID, Event, Outcome, Stack
from ztp.iccid import build_ef_iccid
from ztp.modem import LatencyModel
from ztp.sim import AppletStatus, CardState, ResultCode, RetryPolicy, VirtualSim

from .conftest import gateway_events, host_apdus, run

pytestmark = pytest.mark.timeout(60)

IDENTITY_HEX = build_ef_iccid(DEMO_ICCID).hex()
OTHER_ICCID = "8944502509186389643"

# firmware result codes (lib/provision.py)
OK, UNCHANGED, E_REQUEST_FAILED, E_NO_CONFIG = 0, 1, 30, 31


def _sw(response: bytes) -> int:
    return int.from_bytes(response[-2:], "big")


# ------------------------------------------------------------------ happy path (one stack)

@pytest.fixture(scope="module")
def happy() -> tuple[Outcome, Outcome, dict[str, Any]]:
    async def body(stack: Stack) -> tuple[Outcome, Outcome, dict[str, Any]]:
        first = await stack.provision()
        second = await stack.provision()
        facts = {"counters": stack.sim.state.counters, "status": stack.sim.state.status}
        return first, second, facts

    return run(body)


def test_happy_path_applies_the_configuration(happy):
    first, _, facts = happy
    assert (first.code, first.name) == (OK, "OK")
    assert first.config == DEMO_CONFIG.encode()
    [ex] = first.exchanges
    assert ex.method == "GET"
    assert ex.target == f"/v1/config/{DEMO_DEVICE_ID.hex()}?iccid={IDENTITY_HEX}"
    assert (ex.key_exchange_mode, ex.cipher_suite) == ("PSK_KE", "TLS_AES_128_CCM_SHA256")
    assert ex.identity_hex == IDENTITY_HEX
    assert ex.http_status == 200 and ex.result == 0
    assert ex.bytes_sent > 0 and ex.bytes_received > 0
    [hs] = gateway_events(first.events, "handshake_complete")
    assert hs.info["identity"] == IDENTITY_HEX and hs.info["mode"] == "PSK_KE"
    assert hs.info["sni"] == "gw.ztp.test"
    [fwd] = gateway_events(first.events, "request_forwarded")
    assert fwd.info["status"] == 200 and fwd.info["body_bytes"] == len(DEMO_CONFIG)


def test_happy_path_apdu_sequence(happy):
    first, _, _ = happy
    ins = [(c[1], c[2]) for c, _ in host_apdus(first.events)]
    # MANAGE CHANNEL open, SELECT SAFE2, SET DEVICEID, CA 00, (CC 02, C0)+, CA 01, C0, close
    assert ins[:4] == [(0x70, 0x00), (0xA4, 0x04), (0xDA, 0x02), (0xCA, 0x00)]
    assert ins[-3:] == [(0xCA, 0x01), (0xC0, 0x00), (0x70, 0x80)]
    polls = ins[4:-3]
    assert polls and polls == [(0xCC, 0x02), (0xC0, 0x00)] * (len(polls) // 2)
    # the SIM's own traffic went through the modem's toolkit: DNS over UDP, then TCP
    kinds = [e.info.get("transport") for e in first.events
             if e.source == "modem" and e.kind == "link" and e.info.get("event") == "open"]
    assert kinds == ["UDP_CLIENT_REMOTE", "TCP_CLIENT_REMOTE"]


def test_91xx_answers_during_the_flow_are_success(happy):
    first, _, _ = happy
    answered_91 = [c for c, r in host_apdus(first.events) if _sw(r) >> 8 == 0x91]
    # CA 00 starts the applet's BIP job: a proactive command is pending at once
    assert any(c[1] == 0xCA and c[2] == 0x00 for c in answered_91)
    lines = [bytes(e.info["line"]) for e in first.events
             if e.source == "device" and e.kind == "at" and e.info["dir"] == "<"]
    assert any(line.startswith(b'+CSIM: 4,"91') for line in lines)
    assert first.code == OK


def test_rerun_with_unchanged_configuration_skips_applying(happy):
    first, second, facts = happy
    assert (second.code, second.name) == (UNCHANGED, "UNCHANGED")
    assert second.config == first.config
    # the SIM really fetched it again: one more TLS exchange, answered 200
    assert [ex.http_status for ex in second.exchanges] == [200]
    logs = [e.info["text"] for e in second.events if e.source == "device" and e.kind == "log"]
    assert "configuration unchanged: not applied again" in logs
    assert not any(text.startswith("iot:Alarm") for text in logs)
    assert facts["counters"].successes == 2


# ------------------------------------------------------------------ keys and identities

def test_wrong_psk_on_the_sim():
    async def body(stack: Stack) -> Outcome:
        return await stack.provision()

    outcome = run(body, sim_psk=bytes(16), psk=bytes(range(16)))
    assert outcome.code == E_REQUEST_FAILED
    assert outcome.config is None
    # the gateway answered decrypt_error; the applet gave up at once (not transient)
    closed = gateway_events(outcome.events, "connection_closed")
    assert [e.info["alert"] for e in closed] == ["decrypt_error"]
    assert not gateway_events(outcome.events, "handshake_complete")
    [ex] = outcome.exchanges
    assert ex.result == ResultCode.TLS_ALERT_RECEIVED | 51
    assert f"result {ex.result:04X}" in outcome.detail


class _OtherIccidSim(VirtualSim):
    """A SIM (or a clone of its key) asking for another SIM's configuration."""

    def __init__(self, state: CardState, **kw: Any) -> None:
        super().__init__(state, **kw)
        self.card.applet.targets = self._other_targets  # type: ignore[method-assign]

    def _other_targets(self) -> tuple[str, str]:
        assert self.state.device_id is not None
        query = f"?iccid={build_ef_iccid(OTHER_ICCID).hex()}"
        dev = self.state.device_id.hex()
        return f"/v1/config/{dev}{query}", f"/v1/data/{dev}{query}"


def test_request_for_another_iccid_is_refused_and_audited():
    def sim(state: CardState) -> VirtualSim:
        return _OtherIccidSim(state, retry=RetryPolicy(max_attempts=2, base_s=1, cap_s=1))

    async def body(stack: Stack) -> tuple[Outcome, list[dict[str, Any]], int]:
        outcome = await stack.provision()
        return outcome, await stack.audit(), stack.sim.state.result

    outcome, audit, result = run(body, sim_factory=sim)
    assert outcome.code == E_REQUEST_FAILED
    assert result == 403 and "0193" in outcome.detail
    assert outcome.config is None
    [refused] = gateway_events(outcome.events, "request_refused")
    assert refused.info["status"] == 403
    assert not gateway_events(outcome.events, "request_forwarded")
    mismatches = [e for e in audit if "iccid_mismatch" in json.dumps(e)]
    assert mismatches, audit
    assert IDENTITY_HEX in json.dumps(mismatches[0])


# ------------------------------------------------------------------ availability

def test_gateway_down_then_up_sim_retries_firmware_waits():
    async def body(stack: Stack) -> tuple[Outcome, int, list[Event]]:
        failed = asyncio.Event()

        def listener(ev: Event) -> None:
            if ev.source == "modem" and ev.kind == "link" and ev.info.get("event") == "failed":
                failed.set()  # modem events come on the loop's thread

        await stack.stop_gateway()
        stack.listener = listener
        task = asyncio.create_task(stack.provision())
        await asyncio.wait_for(failed.wait(), 30)
        await stack.start_gateway()
        outcome = await task
        return outcome, stack.sim.state.counters.attempts, list(stack.events)

    outcome, attempts, events = run(body)
    assert outcome.code == OK
    assert outcome.config == DEMO_CONFIG.encode()
    assert attempts >= 2
    fails = [e for e in events if e.source == "modem" and e.kind == "link"
             and e.info.get("event") == "failed"]
    assert fails  # the TCP connect to the stopped gateway
    # meanwhile the firmware kept polling and saw the SIM busy (0001)
    statuses = [r[:2] for c, r in host_apdus(outcome.events) if c[1] == 0xC0 and len(r) == 6]
    assert b"\x00\x01" in statuses and statuses[-1] == b"\x00\x07"


def test_no_configuration_for_this_device():
    async def body(stack: Stack) -> Outcome:
        return await stack.provision()

    outcome = run(body, config_body=None)
    assert (outcome.code, outcome.name) == (E_NO_CONFIG, "E_NO_CONFIG")
    assert "no configuration for this device" in outcome.detail
    assert outcome.config is None
    [fwd] = gateway_events(outcome.events, "request_forwarded")
    assert fwd.info["status"] == 404
    # the channel was closed all the same
    assert host_apdus(outcome.events)[-1][0][:4] == bytes.fromhex("00708001")


# ------------------------------------------------------------------ sizes

def _body_of(size: int) -> str:
    items: dict[str, Any] = {"apn": "iot.example", "interval_s": 60, "debug": False}
    i = 0
    while True:
        room = size - len(json.dumps(items, separators=(",", ":")))
        key = f"note{i}"
        n = min(64, room - len(f',"{key}":""'))
        if n < 1:
            break
        items[key] = "x" * n
        i += 1
    text = json.dumps(items, separators=(",", ":"))
    assert len(text) == size
    return text


def test_254_byte_body_delivered_whole():
    body254 = _body_of(254)

    async def body(stack: Stack) -> Outcome:
        return await stack.provision()

    outcome = run(body, config_body=body254)
    assert outcome.code == OK
    assert outcome.config == body254.encode()
    # read with GET RESPONSE in pieces of at most 128 bytes (the firmware's AT line buffers
    # hold one such +CSIM: line), the card saying 61xx for the rest
    reads = [r for c, r in host_apdus(outcome.events) if c[1] == 0xC0 and len(r) > 6]  # not STATUS
    assert [len(r) - 2 for r in reads] == [128, 126]
    assert b"".join(r[:-2] for r in reads) == body254.encode()
    assert _sw(reads[0]) == 0x617E and _sw(reads[1]) == 0x9000


def _long_reply(app: Any) -> Any:
    """A misbehaving service behind the gateway: 300 bytes for a configuration."""
    payload = json.dumps({"configuration": {"version": "x" * 260}}).encode()

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/config/"):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"),
                                    (b"content-length", str(len(payload)).encode())]})
            await send({"type": "http.response.body", "body": payload})
            return
        await app(scope, receive, send)

    assert len(payload) > 255
    return wrapped


def test_longer_reply_ends_in_the_sims_error_state_not_a_truncated_config():
    async def body(stack: Stack) -> tuple[Outcome, int, int, bytes]:
        outcome = await stack.provision()
        st = stack.sim.state
        return outcome, st.status, st.result, st.body

    outcome, status, result, kept = run(body, upstream=_long_reply)
    assert (status, result) == (AppletStatus.ERROR, ResultCode.BODY_TOO_LARGE)
    assert kept == b""
    assert outcome.code == E_REQUEST_FAILED and "F008" in outcome.detail
    assert outcome.config is None
    # the device never asked for a body
    assert not [c for c, _ in host_apdus(outcome.events) if c[1] == 0xCA and c[2] == 0x01]
    [fwd] = gateway_events(outcome.events, "request_forwarded")
    assert fwd.info["status"] == 200 and fwd.info["body_bytes"] > 255


# ------------------------------------------------------------------ modem trouble

@pytest.mark.parametrize("reboot_ms", [0, 300])
def test_modem_garbage_and_reboot_mid_flow(reboot_ms: int):
    # reboot_ms 0: the modem answers at once after the reboot, at its AT defaults (echo on,
    # plain ERROR) and with the channel gone; 300: it is silent while it boots (the command
    # sent meanwhile is lost), then the SIM is busy for a while (docs/modem.md "Reboot").
    # Either way the device starts the modem again (ATE0, AT+CMEE=1, ...) before its retry.
    seen = {"ca": False, "cc": False}
    garbage = b"\r\n\xff\xfe+GAR\x00BAGE\x1b[0m\r\nOK\r\n"

    def listener(stack: Stack, ev: Event) -> None:
        if not (ev.source == "modem" and ev.kind == "apdu" and ev.info["source"] == "host"):
            return
        command = bytes(ev.info["command"])
        if command[1] == 0xCA and command[2] == 0x00 and not seen["ca"]:
            seen["ca"] = True
            stack.modem.inject_uart_bytes(garbage)  # lands before the +CSIM reply
        elif command[1] == 0xCC and not seen["cc"]:
            seen["cc"] = True
            asyncio.get_running_loop().create_task(stack.modem.reboot())

    async def body(stack: Stack) -> tuple[Outcome, int]:
        outcome = await stack.provision(attempts=4)
        return outcome, stack.modem.reboots

    latency = LatencyModel(reboot_ms=reboot_ms, sim_init_ms=300)
    outcome, reboots = run(body, listener=listener, latency=latency)
    assert seen == {"ca": True, "cc": True}
    assert reboots == 1
    assert outcome.code == OK
    assert outcome.config == DEMO_CONFIG.encode()
    logs = [e.info["text"] for e in outcome.events if e.source == "device" and e.kind == "log"]
    failures = [t for t in logs if t.startswith("attempt ")]
    assert len(failures) >= 2  # one for the garbage, one for the reboot
    # the start sequence ran again after the reboot (the SIM's boot event of the reboot: the
    # power-up's is before this run's events), before the channel was opened again
    boots = [i for i, e in enumerate(outcome.events) if e.source == "modem" and e.kind == "boot"]
    assert boots
    after = [bytes(e.info["data"]) for e in outcome.events[boots[-1]:]
             if e.source == "modem" and e.kind == "at_rx"]
    commands = b"".join(after).split(b"\r")
    for line in (b"ATE0", b"AT+CMEE=1", b"AT+CPIN?", b"AT+CREG?"):
        assert line in commands, line
    assert commands.index(b"AT+CMEE=1") < commands.index(b'AT+CSIM=10,"0070000001"')
    assert sum(t.startswith("modem ready") for t in logs) == 2
