"""OTA PSK rotation end to end: service -> SMS centre -> modem -> SIM (PoR) -> gateway
(the SIM's own TLS handshakes confirm the new key) -> old key retired. Clocks injected."""

from __future__ import annotations

import asyncio

import pytest
from ztp.iccid import build_ef_iccid
from ztp.ota import (
    OtaKeys,
    ResponseStatus,
    SmsAddress,
    build_install_psk_sms,
    check_por,
    parse_sms_deliver,
)
from ztp.service import ServiceClientError
from ztp.sim import AppletStatus, CardState, VirtualSim
from ztp.tls import AlertDescription

from host_tests.gateway.harness import engine_fetch

from .harness import BODY, DAY_S, DEVICE, ICCID, KIC, KID, PSK, OtaStack, replace_faults

IDENTITY = build_ef_iccid(ICCID)


def run(coro_fn, tmp_path, **kw):
    async def main():
        async with OtaStack(tmp_path, **kw) as stack:
            await coro_fn(stack)

    asyncio.run(main())


def get_request() -> bytes:
    return f"GET /v1/config/{DEVICE.hex()}?iccid={IDENTITY.hex()} HTTP/1.1\r\n\r\n".encode()


async def assert_fetch_ok(stack: OtaStack) -> None:
    got = await stack.fetch()
    assert (got.status, got.result) == (AppletStatus.DATA, 0), got
    assert got.body == BODY.encode()


def test_normal_rotation_end_to_end(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await assert_fetch_ok(stack)  # before: key 1
        started = await stack.rotate()
        assert started["started"] == 1 and started["rotations"][0]["state"] == "pending"
        assert await stack.gateway_tags() == ["1", "2"]  # overlap from the start
        summary = await stack.run_due()
        assert summary["sent"] == 1 and summary["por_installed"] == 1
        rot = await stack.rotation()
        assert rot["state"] == "delivered" and rot["attempts"] == 1
        assert stack.sim.state.psk_version == 2 and stack.sim.state.psk != PSK
        assert CardState.load(stack.state_file).psk_version == 2  # persisted
        assert await stack.gateway_tags() == ["1", "2"]  # not retired before confirmation
        await assert_fetch_ok(stack)  # after: the SIM's handshake with key 2 confirms it
        rot = await stack.rotation()
        assert rot["state"] == "retired" and rot["overdue"] is False
        assert [h["to"] for h in rot["history"]] == ["pending", "delivered", "confirmed",
                                                     "retired"]
        assert await stack.gateway_tags() == ["2"]
        await stack.gateway_synced()
        old = await engine_fetch(stack.gateway_port, IDENTITY, PSK, get_request())
        assert old.alert_received == AlertDescription.DECRYPT_ERROR  # old key: refused
        await assert_fetch_ok(stack)  # and the new one keeps working
        actions = await stack.audit_actions()
        for step in ("rotation.start", "rotation.send", "rotation.por", "rotation.delivered",
                     "rotation.confirmed", "rotation.retired"):
            assert step in actions, (step, actions)
        # the SMS that went out is an SMS-DELIVER for SIM data download (TP-PID 7F)
        assert parse_sms_deliver(stack.smsc.log[0].tpdu).protocol_identifier == 0x7F

    run(scenario, tmp_path)


def ota_keys(kid: bytes = KID) -> OtaKeys:
    return OtaKeys(KIC, kid, 1, 1)


def test_replayed_packet_is_refused_with_status_02(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        await stack.run_due()
        assert stack.sim.state.psk_version == 2
        counter = stack.sim.state.ota.counter
        sent = stack.smsc.log[0]
        replay = await stack.smsc.deliver(ICCID, sent.tpdu)  # the same SMS, captured
        por = check_por(ota_keys(), replay.por, expected_counter=counter)
        assert por.verified and por.status == ResponseStatus.CNTR_LOW and por.install is None
        assert stack.sim.state.psk_version == 2 and stack.sim.state.ota.counter == counter
        assert (await stack.rotation())["state"] == "delivered"
        await assert_fetch_ok(stack)

    run(scenario, tmp_path)


def test_wrong_checksum_is_refused_unsecured(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        tpdu = build_install_psk_sms(ota_keys(), counter=5, psk=bytes(16), key_version=2,
                                     originating_address=SmsAddress("123"))
        bad = tpdu[:-1] + bytes([tpdu[-1] ^ 0x01])  # one bit of the ciphered CC/data
        got = await stack.smsc.deliver(ICCID, bad)
        por = check_por(ota_keys(), got.por)
        assert not por.verified and por.status == ResponseStatus.RC_CC_DS_FAILED
        assert stack.sim.state.psk_version == 1 and stack.sim.state.ota.counter == 0
        await assert_fetch_ok(stack)  # nothing changed on the card

    run(scenario, tmp_path)


def test_wrong_key_fails_the_rotation_and_keeps_both_keys(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        summary = await stack.run_due()
        assert summary["failed"] == 1
        rot = await stack.rotation()
        assert rot["state"] == "failed" and "unverified" in rot["last_por"]
        assert stack.sim.state.psk_version == 1 and stack.sim.state.psk == PSK
        assert await stack.gateway_tags() == ["1", "2"]
        await assert_fetch_ok(stack)  # the SIM keeps working with its old key
        with pytest.raises(ServiceClientError) as err:  # never retired before confirmation
            await stack.api("PATCH", f"/v1/sims/{ICCID}/keys/psk/1", json={"state": "retired"})
        assert err.value.status == 409
        assert "rotation.por" in await stack.audit_actions()

    run(scenario, tmp_path, kid_in_service=bytes(16))


def test_packet_lost_is_resent_after_the_backoff(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        replace_faults(stack.smsc, drop_sms=True)
        assert (await stack.run_due())["no_por"] == 1
        assert (await stack.rotation())["state"] == "pending"
        assert stack.sim.state.psk_version == 1
        replace_faults(stack.smsc, drop_sms=False)
        assert (await stack.run_due())["sent"] == 0  # not due yet: clock did not move
        stack.clock.advance(600)  # RotationPolicy.retry_after_s
        summary = await stack.run_due()
        assert summary["sent"] == 1 and summary["por_installed"] == 1
        rot = await stack.rotation()
        assert rot["state"] == "delivered" and rot["attempts"] == 2
        assert stack.sim.state.ota.counter == 2  # the resend took a new counter
        await assert_fetch_ok(stack)
        assert (await stack.rotation())["state"] == "retired"
        assert "rotation.no_por" in await stack.audit_actions()

    run(scenario, tmp_path)


def test_por_lost_sim_on_new_key_gateway_accepts_both(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        replace_faults(stack.smsc, drop_por=True)
        assert (await stack.run_due())["no_por"] == 1
        assert stack.sim.state.psk_version == 2  # the SIM has the new key...
        assert (await stack.rotation())["state"] == "pending"  # ...we never heard of it
        assert await stack.gateway_tags() == ["1", "2"]
        await assert_fetch_ok(stack)  # new-key handshake: confirmed without a PoR
        rot = await stack.rotation()
        assert rot["state"] == "retired"
        assert [(h["event"], h["to"]) for h in rot["history"]] == [
            ("packet_sent", "pending"), ("new_key_handshake", "confirmed"),
            ("retire_old_key", "retired")]

    run(scenario, tmp_path)


def test_por_lost_then_retry_is_idempotent(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        replace_faults(stack.smsc, drop_por=True)
        await stack.run_due()
        replace_faults(stack.smsc, drop_por=False)
        stack.clock.advance(600)
        summary = await stack.run_due()  # same version, same PSK: SW 9000 again
        assert summary["por_installed"] == 1
        assert (await stack.rotation())["state"] == "delivered"
        await assert_fetch_ok(stack)

    run(scenario, tmp_path)


def test_power_cut_mid_update_keeps_the_old_key(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        stack.sim.ota.power_cut_after = 40  # the new state file is cut after 40 bytes
        summary = await stack.run_due()
        assert summary["por_retryable"] == 1  # applet SW 6581
        assert (await stack.rotation())["state"] == "pending"
        assert list(tmp_path.glob("sim.json.*.tmp"))  # the torn write, never renamed
        reloaded = CardState.load(stack.state_file)  # the card powers up again
        assert reloaded.psk_version == 1 and reloaded.psk == PSK
        await stack.start_modem(VirtualSim(reloaded))
        await assert_fetch_ok(stack)  # old key works
        stack.clock.advance(600)
        assert (await stack.run_due())["por_installed"] == 1
        assert CardState.load(stack.state_file).psk_version == 2
        await assert_fetch_ok(stack)
        assert (await stack.rotation())["state"] == "retired"

    run(scenario, tmp_path)


def test_sim_offline_for_days_is_overdue_and_keeps_its_old_key(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        started = await stack.rotate()
        batch = started["batch"]
        replace_faults(stack.smsc, drop_sms=True)  # SIM switched off: nothing arrives
        sent = 0
        for _ in range(8 * 4):  # eight days, the sender woken every six hours
            sent += (await stack.run_due())["sent"]
            stack.clock.advance(6 * 3600)
        rot = await stack.rotation()
        assert rot["state"] == "pending" and rot["overdue"] is True
        assert rot["attempts"] == sent and 5 <= sent <= 20  # backoff: not every wake-up
        overdue = await stack.api("GET", "/v1/rotations", params={"overdue": "true"})
        assert [r["iccid"] for r in overdue["rotations"]] == [ICCID]
        progress = await stack.api("GET", f"/v1/rotations/batches/{batch}")
        assert progress["overdue"] == 1 and progress["done"] == 0
        assert await stack.gateway_tags() == ["1", "2"]  # old key never retired
        await assert_fetch_ok(stack)  # the SIM comes back on its old key: still fine
        assert (await stack.rotation())["state"] == "pending"
        replace_faults(stack.smsc, drop_sms=False)
        stack.clock.advance(DAY_S)
        assert (await stack.run_due())["por_installed"] == 1
        await assert_fetch_ok(stack)
        assert (await stack.rotation())["state"] == "retired"

    run(scenario, tmp_path)
