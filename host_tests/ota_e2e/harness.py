"""A whole OTA rotation stack on loopback: configuration service (SQLite, injected clock) +
gateway (both a ``ztp.stack.Stack`` without its modem) + SMS centre + virtual modem + virtual
SIM with OTA keys; and in-process SIMs for the batch test.

The SIM fetches its configuration itself (the SAFE2 applet, through the modem's BIP sockets,
TLS 1.3 PSK to the real gateway), driven by the APDUs a device sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ztp import stk
from ztp.gateway import Gateway, GatewayConfig, RateLimit, ServiceClient
from ztp.iccid import build_ef_iccid
from ztp.modem import Network, SmsCentre, VirtualModem
from ztp.ota import build_sms_pp_download
from ztp.service import MasterKeyring, Settings
from ztp.service import ServiceClient as AdminClient
from ztp.sim import AppletStatus, CardState, VirtualSim
from ztp.sim._ota import install_ota_keys
from ztp.stack import Stack, StackOptions

ICCID = "8944502509186389635"
DEVICE = bytes.fromhex("00112233445566778899aabbccddeeff")
BODY = '{"configuration":{"version":"2021-05-31","config":[{"action":"iot:Alarm","effect":"On"}]}}'
PSK = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")
KIC = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
KID = bytes.fromhex("101112131415161718191a1b1c1d1e1f")
START_MS = 1_800_000_000_000
DAY_S = 86_400


class FakeClock:
    """The service's clock (epoch ms); tests move it, nothing sleeps on it."""

    def __init__(self, now_ms: int = START_MS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += int(seconds * 1000)


def make_settings(tmp: Path, clock: FakeClock, sms_centre: object = None) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp / 'ztp.db'}",
                    master_key=MasterKeyring.generate(), fast_hashing=True, clock_ms=clock,
                    token_ttl_s=365 * DAY_S, sms_centre=sms_centre)


@dataclass
class Fetch:
    status: int  # SAFE2 state SSSS
    result: int  # RRRR
    body: bytes


@dataclass
class OtaStack:
    tmp: Path
    clock: FakeClock = field(default_factory=FakeClock)
    kid_in_service: bytes = KID  # a different one: "wrong key"
    admin: AdminClient = field(init=False)
    smsc: SmsCentre = field(init=False)
    gateway: Gateway = field(init=False)
    gw_service: ServiceClient = field(init=False)
    modem: VirtualModem | None = field(init=False, default=None)
    sim: VirtualSim = field(init=False)
    state_file: Path = field(init=False)
    gateway_port: int = field(init=False)
    url: str = field(init=False)
    _exit: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def __aenter__(self) -> OtaStack:
        try:
            await self._start()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    async def _start(self) -> None:
        self.smsc = SmsCentre()
        await self._exit.enter_async_context(self.smsc)
        config = GatewayConfig(name="gw-ota", linger_s=0.1, psk_poll_interval_s=0.05,
                               identity_rate=RateLimit.per_minute(600, burst=100))
        stack = Stack(StackOptions(data_dir=self.tmp,
                                   settings=make_settings(self.tmp, self.clock, self.smsc.url),
                                   gateway_config=config, with_modem=False))
        await self._exit.enter_async_context(stack)
        url = self.url = stack.service_url
        creds = stack.credentials
        self.admin = AdminClient(url)
        self._exit.callback(self.admin.close)
        await asyncio.to_thread(self.admin.login, creds.admin_id, creds.admin_secret)
        rows = [{"iccid": ICCID, "psk": PSK.hex(), "tag": "1", "kic": KIC.hex(),
                 "kid": self.kid_in_service.hex()}]
        await asyncio.to_thread(self.admin.request, "POST", "/v1/sims/import", json=rows)
        await asyncio.to_thread(self.admin.set_config, ICCID, DEVICE.hex(), BODY)
        self.gw_service = stack.gateway.service
        self.gateway = stack.gateway
        port = self.gateway_port = stack.gateway_port
        self.state_file = self.tmp / "sim.json"
        state = CardState.create(ICCID, PSK, "127.0.0.1", port)
        install_ota_keys(state, KIC, KID)
        state.save(self.state_file)
        await self.start_modem(VirtualSim(state))

    async def start_modem(self, sim: VirtualSim) -> None:
        """(Re)start the modem around ``sim`` (a card reloaded after a power cut)."""
        if getattr(self, "modem", None) is not None:
            await self.modem.close()
        self.sim = sim
        self.modem = VirtualModem(sim, network=Network(), apply_card_cost=False)
        await self.modem.start()
        self._exit.push_async_callback(self.modem.close)
        self.smsc.attach(ICCID, self.modem)

    # ------------------------------------------------------------------ operator
    async def api(self, method: str, path: str, **kw: Any) -> Any:
        resp = await asyncio.to_thread(self.admin.request, method, path, **kw)
        return resp.json() if resp.content else None

    async def rotate(self, **body: Any) -> dict[str, Any]:
        return await self.api("POST", "/v1/rotations", json=body or {"iccids": [ICCID]})

    async def run_due(self) -> dict[str, int]:
        return await self.api("POST", "/v1/rotations/run")

    async def rotation(self) -> dict[str, Any]:
        return await self.api("GET", f"/v1/sims/{ICCID}/rotation")

    async def gateway_tags(self) -> list[str]:
        """Key tags the gateway would be given now for this SIM (gateway API)."""
        keys = await self.gw_service.get_psks(build_ef_iccid(ICCID))
        return sorted(k.tag for k in keys or ())

    async def audit_actions(self) -> list[str]:
        events = await self.api("GET", "/v1/audit", params={"iccid": ICCID, "limit": 1000})
        return [e["action"] for e in events["events"]]

    async def gateway_synced(self) -> None:
        """Wait until the gateway's PSK cache has followed the change feed to its end."""
        last, _ = await self.gw_service.psk_changes(0)
        for _ in range(2000):
            if self.gateway.watcher.after is not None and self.gateway.watcher.after >= last:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the gateway never caught up with the PSK change feed")

    # ------------------------------------------------------------------ device side
    async def fetch(self) -> Fetch:
        """What a device does: open a channel, select SAFE2, set its DeviceID, request the
        configuration, poll the status, read it. The SIM does DNS-less TLS to the gateway."""
        await self.gateway_synced()
        tx = self.modem.transmit
        resp = await tx(bytes.fromhex("0070000001"))
        ch = resp[0]
        aid = bytes.fromhex("F0706F646773616665320101")
        await tx(bytes([ch, 0xA4, 0x04, 0x0C, len(aid)]) + aid)
        await tx(bytes([ch, 0xDA, 0x02, 0xC0, len(DEVICE)]) + DEVICE)
        await tx(bytes([ch, 0xCA, 0x00, 0x00, 0x00]))
        status = result = 0
        for _ in range(3000):
            resp = await tx(bytes([ch, 0xCC, 0x02, 0x00, 0x04]))
            status = int.from_bytes(resp[0:2], "big")
            result = int.from_bytes(resp[2:4], "big")
            if status in (AppletStatus.DONE, AppletStatus.DATA, AppletStatus.ERROR):
                break
            await asyncio.sleep(0.01)
        body = b""
        if status == AppletStatus.DATA:
            resp = await tx(bytes([ch, 0xCA, 0x01, 0x00, 0x00]))
            resp = await tx(bytes([ch, 0xC0, 0x00, 0x00, resp[-1]]))
            body = resp[:-2]
        await tx(bytes([0x00, 0x70, 0x80, ch, 0x00]))
        return Fetch(status, result, body)


class InProcessSims:
    """``SmsTransport`` for the service: SMS-PP download straight into in-process cards."""

    def __init__(self) -> None:
        self.sims: dict[str, VirtualSim] = {}
        self.delivered = 0

    def deliver(self, iccid: str, tpdu: bytes) -> bytes | None:
        sim = self.sims[iccid]
        resp = sim.transmit(stk.build_envelope_apdu(build_sms_pp_download(tpdu)), 0)
        self.delivered += 1
        if len(resp) == 2 and resp[0] == 0x61:
            resp = sim.transmit(bytes([0, 0xC0, 0, 0, resp[1]]), 0)
            return resp[:-2]
        return None


def card(iccid: str, psk: bytes, *, kic: bytes = KIC, kid: bytes = KID) -> VirtualSim:
    state = CardState.create(iccid, psk, "127.0.0.1", 9)
    install_ota_keys(state, kic, kid)
    return VirtualSim(state)


def replace_faults(smsc: SmsCentre, **kw: Any) -> None:
    smsc.faults = dataclasses.replace(smsc.faults, **kw)
