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


def test_wrong_key_unverified_por_is_ignored_and_keeps_both_keys(tmp_path):
    # The card answers with an unsecured 01 (it cannot check our CC): an unverified PoR, which
    # anybody able to send an SMS could forge. It fails nothing: the rotation stays pending
    # and is resent after the backoff, like a lost PoR.
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        summary = await stack.run_due()
        assert summary["por_unverified"] == 1 and summary["failed"] == 0
        rot = await stack.rotation()
        assert rot["state"] == "pending" and "unverified" in rot["last_por"]
        assert stack.sim.state.psk_version == 1 and stack.sim.state.psk == PSK
        assert await stack.gateway_tags() == ["1", "2"]
        await assert_fetch_ok(stack)  # the SIM keeps working with its old key
        with pytest.raises(ServiceClientError) as err:  # never retired before confirmation
            await stack.api("PATCH", f"/v1/sims/{ICCID}/keys/psk/1", json={"state": "retired"})
        assert err.value.status == 409
        por = [e for e in (await stack.api("GET", "/v1/audit", params={
            "iccid": ICCID, "action": "rotation.por"}))["events"]]
        assert por and por[-1]["severity"] == "alert"
        assert por[-1]["detail"]["event"] == "por_unverified"
        assert (await stack.run_due())["sent"] == 0
        stack.clock.advance(600)
        assert (await stack.run_due())["por_unverified"] == 1  # the retry path
        assert (await stack.rotation())["attempts"] == 2

    run(scenario, tmp_path, kid_in_service=bytes(16))


async def refuse_verified(stack: OtaStack) -> None:
    """The SIM already holds key version 5: the applet refuses version 2 (SW 6985) in a
    verified PoR reporting version 5 -> FAILED."""
    stack.sim.state.psk_version = 5
    await stack.rotate()
    summary = await stack.run_due()
    assert summary["failed"] == 1, summary
    rot = await stack.rotation()
    assert rot["state"] == "failed" and "6985" in rot["last_por"]
    assert rot["next_due_ms"] is None


def test_failed_rotation_is_not_resent_until_retried(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await refuse_verified(stack)
        counter = stack.sim.state.ota.counter
        for _ in range(10):  # ten days, past every backoff of the policy
            stack.clock.advance(DAY_S)
            assert (await stack.run_due())["sent"] == 0
        rot = await stack.rotation()
        assert (rot["state"], rot["attempts"]) == ("failed", 1)
        assert stack.sim.state.ota.counter == counter and len(stack.smsc.log) == 1
        assert await stack.gateway_tags() == ["1", "2"]
        # the operator retries: pending, due now, sent at the next run
        retried = await stack.api("POST", f"/v1/sims/{ICCID}/rotation/retry")
        assert retried["state"] == "pending" and retried["next_due_ms"] == stack.clock.now_ms
        assert "rotation.retry" in await stack.audit_actions()
        with pytest.raises(ServiceClientError) as err:  # only a failed one is retried
            await stack.api("POST", f"/v1/sims/{ICCID}/rotation/retry")
        assert (err.value.status, err.value.code) == (409, "rotation_not_failed")
        summary = await stack.run_due()
        assert summary["sent"] == 1 and summary["failed"] == 1  # refused again
        assert (await stack.rotation())["attempts"] == 2
        stack.clock.advance(DAY_S)
        assert (await stack.run_due())["sent"] == 0

    run(scenario, tmp_path)


def test_retry_without_a_rotation_is_404(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        with pytest.raises(ServiceClientError) as err:
            await stack.api("POST", f"/v1/sims/{ICCID}/rotation/retry")
        assert (err.value.status, err.value.code) == (404, "unknown_rotation")

    run(scenario, tmp_path)


def test_cancel_after_verified_refusal_retires_the_new_key_and_rotates_again(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await refuse_verified(stack)
        out = await stack.api("POST", f"/v1/sims/{ICCID}/rotation/cancel",
                              json={"reason": "card on an unexpected key version"})
        assert out["state"] == "cancelled" and out["new_key"] == "retired"
        assert out["accepted_tags"] == ["1"] and out["next_due_ms"] is None
        assert await stack.gateway_tags() == ["1"]  # the old key stays
        await assert_fetch_ok(stack)  # the SIM (on its old PSK) still works
        events = (await stack.api("GET", "/v1/audit", params={
            "iccid": ICCID, "action": "rotation.cancel"}))["events"]
        assert events[-1]["detail"]["new_key"] == "retired"
        assert events[-1]["detail"]["reason"] == "card on an unexpected key version"
        stack.clock.advance(DAY_S)
        assert (await stack.run_due())["sent"] == 0
        with pytest.raises(ServiceClientError) as err:  # closed: nothing to cancel
            await stack.api("POST", f"/v1/sims/{ICCID}/rotation/cancel")
        assert err.value.status == 404
        again = await stack.rotate()  # no rotation open any more: the SIM rotates again
        assert again["started"] == 1
        assert (again["rotations"][0]["old_tag"], again["rotations"][0]["new_tag"]) == ("1", "3")

    run(scenario, tmp_path)


def test_cancel_when_the_sim_may_hold_the_new_key_keeps_both(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate(iccids=[ICCID], policy={"max_attempts": 1})
        replace_faults(stack.smsc, drop_por=True)
        assert (await stack.run_due())["no_por"] == 1
        assert stack.sim.state.psk_version == 2  # installed, but we never heard of it
        stack.clock.advance(DAY_S)
        assert (await stack.run_due())["sent"] == 0  # attempts used up: stuck in pending
        out = await stack.api("POST", f"/v1/sims/{ICCID}/rotation/cancel")
        assert out["state"] == "cancelled" and out["new_key"] == "kept"
        assert "both stay accepted" in out["note"]
        assert await stack.gateway_tags() == ["1", "2"]
        await assert_fetch_ok(stack)  # the SIM uses key 2: never locked out
        events = (await stack.api("GET", "/v1/audit", params={
            "iccid": ICCID, "action": "rotation.cancel"}))["events"]
        assert events[-1]["detail"]["new_key"] == "kept"
        assert events[-1]["severity"] == "alert"
        # closed: the operator may now retire the key the SIM does not use
        await stack.api("PATCH", f"/v1/sims/{ICCID}/keys/psk/1", json={"state": "retired"})
        assert await stack.gateway_tags() == ["2"]
        await assert_fetch_ok(stack)

    run(scenario, tmp_path)


def test_cancel_refused_for_a_delivered_rotation(tmp_path):
    async def scenario(stack: OtaStack) -> None:
        await stack.rotate()
        assert (await stack.run_due())["por_installed"] == 1
        with pytest.raises(ServiceClientError) as err:
            await stack.api("POST", f"/v1/sims/{ICCID}/rotation/cancel")
        assert (err.value.status, err.value.code) == (409, "rotation_not_cancellable")
        assert (await stack.rotation())["state"] == "delivered"

    run(scenario, tmp_path)


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
