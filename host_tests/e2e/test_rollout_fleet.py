"""Staged rollouts over 100 virtual SIMs (issue 17, "Done when"): real ``ztp.sim.VirtualSim``
cards, each behind a ``ztp.modem.VirtualModem`` driven by APDUs as the firmware drives it
(without the UART, as ``ztp bench storm`` does), provisioning through the real gateway and
configuration service (``ztp.stack.Stack`` without its own modem) in one asyncio loop.

Everything a SIM does goes the APDU path: START CONFIG REQUEST, GET STATUS, READ, and the
device report (docs/device-report.md) as C1 telemetry before the next CA 00 in the same SAFE2
session. Operator steps go through ``ztp.service.ServiceClient``.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from ztp.iccid import luhn_check_digit
from ztp.modem import Network, VirtualModem
from ztp.service import ServiceClient
from ztp.sim import CardState, VirtualSim
from ztp.stack import Stack, StackOptions

pytestmark = pytest.mark.timeout(120)

T = TypeVar("T")
N = 100
LABEL = "fleet=pumps"
V1 = '{"configuration":{"version":"v1","config":[{"action":"iot:Alarm","effect":"On"}]}}'
V2 = '{"configuration":{"version":"v2","config":[{"action":"iot:Alarm","effect":"Off"}]}}'
V3 = '{"configuration":{"version":"v3","config":[{"action":"iot:Led","effect":"On"}]}}'
E_NOT_APPLICABLE = 42
PSK = bytes(range(16))
SAFE2_AID = b"\xf0podgsafe2\x01\x01"  # SAFE2-PROTOCOL.md
STATUS_DATA, STATUS_DONE, STATUS_ERROR = 0x0007, 0x0003, 0x000F


def digest(body: str | bytes) -> str:
    raw = body.encode() if isinstance(body, str) else body
    return f"crc32:{zlib.crc32(raw):08x}"


def report(outcome: str, held: str | None, code: int = 0, rejected: str | None = None) -> bytes:
    """The firmware's report document (docs/device-report.md; lib/apply.py build_report)."""
    doc: dict[str, Any] = {"v": 1, "digest": digest(held) if held else None,
                           "outcome": outcome, "code": code}
    if rejected is not None:
        doc["rejected"] = digest(rejected)
    return json.dumps(doc, separators=(",", ":")).encode()


def make_iccid(i: int) -> str:
    payload = f"894450250917{i:06d}"
    return payload + luhn_check_digit(payload)


class Card:
    """One SIM + modem with its device ID, driven by APDUs as the firmware drives them."""

    def __init__(self, index: int, port: int, network: Network) -> None:
        self.iccid = make_iccid(index)
        self.device_id = f"{index:08x}"
        self.sim = VirtualSim(CardState.create(self.iccid, PSK, "127.0.0.1", port))
        # the card takes no simulated time (as the e2e conftest's sim_cost=None)
        self.modem = VirtualModem(self.sim, network=network, apply_card_cost=False)
        self.cla = 0
        self.bodies: list[bytes] = []  # every body this card read, in order

    async def apdu(self, apdu: bytes, what: str) -> bytes:
        rsp = await self.modem.transmit(apdu)
        if rsp[-2] == 0x61:  # GET RESPONSE on the same channel (TS 102 221 §7.3.1.1.4)
            rsp = await self.modem.transmit(bytes([self.cla, 0xC0, 0, 0, rsp[-1]]))
        assert rsp[-2:] == b"\x90\x00" or rsp[-2] == 0x91, f"{what}: SW {rsp[-2:].hex()}"
        return rsp[:-2]

    async def open(self) -> None:
        await self.modem.start()
        ch = (await self.apdu(bytes.fromhex("0070000001"), "MANAGE CHANNEL"))[0]
        self.cla = ch if ch < 4 else 0x40 | (ch - 4)
        await self.apdu(bytes([self.cla, 0xA4, 0x04, 0x0C, len(SAFE2_AID)]) + SAFE2_AID,
                        "SELECT SAFE2")
        device_id = bytes.fromhex(self.device_id)
        await self.apdu(bytes([self.cla, 0xDA, 0x02, 0xC0, len(device_id)]) + device_id,
                        "SET DEVICEID")

    async def fetch(self, pending_report: bytes | None = None) -> bytes:
        """The firmware's run: the waiting report as C1, then CA 00, wait, status, READ."""
        if pending_report is not None:
            await self.apdu(bytes([self.cla, 0xDA, 0x02, 0xC1, len(pending_report)])
                            + pending_report, "TELEMETRY")
        await self.apdu(bytes([self.cla, 0xCA, 0, 0, 0]), "START CONFIG REQUEST")
        async with asyncio.timeout(30):
            while self.sim.state.status not in (STATUS_DATA, STATUS_DONE, STATUS_ERROR):
                await asyncio.sleep(0.01)
        status = await self.apdu(bytes([self.cla, 0xCC, 0x02, 0, 0]), "STATUS")
        state, result = int.from_bytes(status[:2], "big"), int.from_bytes(status[2:4], "big")
        assert (state, result) == (STATUS_DATA, 0), f"{self.iccid}: {state:04X} {result:04X}"
        body = await self.apdu(bytes([self.cla, 0xCA, 0x01, 0, 0]), "READ CONFIG")
        self.bodies.append(body)
        return body


class Fleet:
    """The stack, the operator's client (called off the loop's thread) and the N cards."""

    def __init__(self, stack: Stack, admin: ServiceClient, cards: list[Card]) -> None:
        self.stack, self.admin, self.cards = stack, admin, cards

    async def op(self, method: str, *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(getattr(self.admin, method), *args, **kw)

    async def fetch_all(self, cards: list[Card], pending: bytes | None = None) -> list[bytes]:
        return list(await asyncio.gather(*(c.fetch(pending) for c in cards)))


def run_fleet(body: Callable[[Fleet], Awaitable[T]]) -> T:
    """100 SIMs labelled fleet=pumps with their devices, all holding v1 confirmed (in sync)."""

    async def main() -> T:
        options = StackOptions(with_modem=False, fast_hashing=True, record_events=False)
        async with Stack(options) as stack:
            admin = ServiceClient(stack.service_url)
            network = Network()
            cards = [Card(i, stack.gateway_port, network) for i in range(N)]
            try:
                await asyncio.to_thread(admin.login, stack.credentials.admin_id,
                                        stack.credentials.admin_secret)
                fleet = Fleet(stack, admin, cards)
                await fleet.op("import_psks", [
                    {"iccid": c.iccid, "psk": PSK.hex(), "labels": {"fleet": "pumps"}}
                    for c in cards])
                await fleet.op("set_label_config", LABEL, V1, 10)
                await asyncio.gather(*(c.open() for c in cards))
                assert await fleet.fetch_all(cards) == [V1.encode()] * N
                # the report of the first run, before the second fetch (mark_good passed)
                assert await fleet.fetch_all(cards, report("confirmed", V1)) == [V1.encode()] * N
                states = await fleet.op("devices", label=LABEL, limit=1000)
                assert len(states) == N and {d["state"] for d in states} == {"in_sync"}
                return await body(fleet)
            finally:
                await asyncio.gather(*(c.modem.close() for c in cards), return_exceptions=True)
                await network.close()
                await asyncio.to_thread(admin.close)

    return asyncio.run(main())


def test_stage_one_in_sync_widens_the_rollout_over_100_sims():
    async def body(fleet: Fleet) -> None:
        started = await fleet.op("start_rollout", LABEL, V2, stages=[10, 100], max_failures=2)
        rid = started["id"]
        assert (started["state"], started["stage"]) == ("running", 0)
        # every card fetches: the stage (about 10 %) reads v2, everyone else still v1
        read = await fleet.fetch_all(fleet.cards)
        assert set(read) == {V1.encode(), V2.encode()}
        stage1 = [c for c in fleet.cards if c.bodies[-1] == V2.encode()]
        outside = [c for c in fleet.cards if c.bodies[-1] == V1.encode()]
        assert 3 <= len(stage1) <= 20 and started["counts"]["in_stage"] == len(stage1)
        pending = await fleet.op("devices", state="pending", limit=1000)
        assert {d["iccid"] for d in pending} == {c.iccid for c in stage1}
        # outside the stage, fetching again still gives v1
        assert await fleet.fetch_all(outside) == [V1.encode()] * len(outside)
        assert (await fleet.op("rollout", rid))["stage"] == 0  # delivered is not confirmed
        # all but one of the stage confirm: not widened yet
        await fleet.fetch_all(stage1[:-1], report("confirmed", V2))
        assert (await fleet.op("rollout", rid))["stage"] == 0
        await fleet.fetch_all(stage1[-1:], report("confirmed", V2))
        status = await fleet.op("rollout", rid)
        assert (status["state"], status["stage"]) == ("running", 1)
        for c in stage1:
            view = await fleet.op("device", c.iccid, c.device_id)
            assert view["state"] == "in_sync" and view["delivered"]["digest"] == digest(V2)
        # widened to 100 %: the rest now gets v2 too
        assert await fleet.fetch_all(outside) == [V2.encode()] * len(outside)

    run_fleet(body)


def test_failing_body_stops_at_the_threshold_and_the_rest_never_receive_it():
    async def body(fleet: Fleet) -> None:
        started = await fleet.op("start_rollout", LABEL, V3, stages=[20, 100], max_failures=2)
        rid = started["id"]
        # every card fetches: only the stage (about 20 %) reads v3
        read = await fleet.fetch_all(fleet.cards)
        assert set(read) == {V1.encode(), V3.encode()}
        stage1 = [c for c in fleet.cards if c.bodies[-1] == V3.encode()]
        outside = [c for c in fleet.cards if c.bodies[-1] == V1.encode()]
        assert 3 < len(stage1) <= 35 and started["counts"]["in_stage"] == len(stage1)
        # the card turns v3 down (no handler, 42), v1 stays in force; reported on the next run
        turned_down = report("rejected", V1, E_NOT_APPLICABLE, rejected=V3)
        for n, card in enumerate(stage1[:3]):
            await card.fetch(turned_down)
            state = (await fleet.op("rollout", rid))["state"]
            assert state == ("running" if n < 2 else "stopped")
        status = await fleet.op("rollout", rid)
        assert (status["stage"], status["counts"]["failed"]) == (0, 3)
        assert "max_failures 2" in status["reason"]
        # stopped: no widening; every device outside stage 1 fetches again and gets v1
        assert await fleet.fetch_all(outside) == [V1.encode()] * len(outside)
        assert (await fleet.op("rollout", rid))["stage"] == 0
        for c in outside:
            assert V3.encode() not in c.bodies
            view = await fleet.op("device", c.iccid, c.device_id)
            assert view["delivered"]["digest"] == digest(V1)
        failed = await fleet.op("devices", state="failed", limit=1000)
        assert {(f["iccid"], f["reported"]["code"]) for f in failed} == {
            (c.iccid, E_NOT_APPLICABLE) for c in stage1[:3]}
        # abort: v1 is desired again everywhere, and the stage fetches it back
        assert (await fleet.op("rollout", rid, "abort"))["state"] == "aborted"
        assert (await fleet.op("label_config", LABEL))["body"] == V1
        for c in fleet.cards:
            view = await fleet.op("device", c.iccid, c.device_id)
            assert view["desired"]["digest"] == digest(V1)
        assert await fleet.fetch_all(stage1) == [V1.encode()] * len(stage1)

    run_fleet(body)
