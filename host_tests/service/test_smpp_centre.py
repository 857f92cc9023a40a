"""The SMPP SMS-centre adapter (ztp.service._smpp_centre) against a fake SMSC of our own
making: an asyncio SMPP v3.4 server on loopback, in its own thread, with its own PDU code
(struct, not ztp.ota.smpp), that hands each submit_sm to a virtual SIM and sends the PoR back
as deliver_sm: at once, late, twice, after the wait, or never."""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
import time
from dataclasses import dataclass, field

import pytest
from starlette.testclient import TestClient
from ztp import stk
from ztp.ota import (
    OtaKeys,
    SmsAddress,
    SmsDeliver,
    build_install_psk_sms,
    build_sms_deliver,
    build_sms_pp_download,
    parse_sms_deliver,
)
from ztp.service import ServiceClient as AdminClient
from ztp.service import bootstrap_credentials, create_app
from ztp.service._rotation import close_sms_centres, transport_from_settings
from ztp.service._smpp_centre import SmppSmsCentre, SmppUrlError, parse_smpp_url
from ztp.service._sms_centre import SmsTransportError

from host_tests.ota_e2e.harness import KIC, KID, FakeClock, card, make_settings

ICCID = "8944502509186389635"
MSISDN = "447700900555"
OTA_ADDR = "447700900123"  # the service's TP-OA (OTA_SERVER_ADDRESS)
PASSWORD = "s3cr3t!"
PSK = bytes.fromhex("a1b2c3d4e5f60718293a4b5c6d7e8f90")


def cstr(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.index(b"\x00", pos)
    return body[pos:end], end + 1


@dataclass
class FakeSmsc:
    """SMPP v3.4 SMSC on 127.0.0.1. ``por``: "now" | "twice" | "never" | float (seconds of
    delay). Records every PDU it gets as (command_id, status, seq, body)."""

    sims: dict = field(default_factory=dict)  # MSISDN -> VirtualSim
    por: object = "now"
    bind_status: int = 0
    received: list = field(default_factory=list)
    submits: list = field(default_factory=list)  # raw submit_sm bodies
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _writers: list = field(default_factory=list)
    _seq: int = 1000

    def start(self) -> FakeSmsc:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            server = self._loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0))
            self.port = server.sockets[0].getsockname()[1]
            self._server = server
            ready.set()
            self._loop.run_forever()
            server.close()
            self._loop.run_until_complete(server.wait_closed())
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        def shut() -> None:
            for w in self._writers:
                w.close()
            self._loop.stop()

        self._loop.call_soon_threadsafe(shut)
        self._thread.join(5)

    def drop_connections(self) -> None:
        self._loop.call_soon_threadsafe(lambda: [w.close() for w in self._writers])

    def inject(self, data: bytes) -> None:
        """Write raw bytes to every connected client."""
        self._loop.call_soon_threadsafe(lambda: [w.write(data) for w in self._writers])

    def url(self, **query: object) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"smpp://ztp-ota:{PASSWORD}@127.0.0.1:{self.port}?system_type=OTA&{q}"

    def commands(self) -> list[int]:
        return [r[0] for r in self.received]

    def wait_for(self, cond, timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError("fake SMSC: condition not met")
            time.sleep(0.01)

    @staticmethod
    def pdu(cid: int, status: int, seq: int, body: bytes = b"") -> bytes:
        return struct.pack(">IIII", 16 + len(body), cid, status, seq) + body

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._writers.append(writer)
        try:
            while True:
                head = await reader.readexactly(16)
                length, cid, status, seq = struct.unpack(">IIII", head)
                body = await reader.readexactly(length - 16)
                self.received.append((cid, status, seq, body))
                if cid == 0x00000009:  # bind_transceiver
                    writer.write(self.pdu(0x80000009, self.bind_status, seq,
                                          b"FAKE\x00" if not self.bind_status else b""))
                elif cid == 0x00000015:
                    writer.write(self.pdu(0x80000015, 0, seq))
                elif cid == 0x00000006:
                    writer.write(self.pdu(0x80000006, 0, seq))
                    await writer.drain()
                    break
                elif cid == 0x00000004:
                    self.submits.append(body)
                    if self.por == "first":  # the PoR beats the submit_sm_resp
                        await self._to_sim(writer, body)
                    writer.write(self.pdu(0x80000004, 0, seq, b"msg-%d\x00" % len(self.submits)))
                    if self.por != "first":
                        asyncio.get_running_loop().create_task(self._to_sim(writer, body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _to_sim(self, writer: asyncio.StreamWriter, body: bytes) -> None:
        _, pos = cstr(body, 0)  # service_type
        pos += 2
        source, pos = cstr(body, pos)
        pos += 2
        dest, pos = cstr(body, pos)
        esm, pid = body[pos], body[pos + 1]
        _, pos = cstr(body, pos + 3)  # schedule_delivery_time
        _, pos = cstr(body, pos)  # validity_period
        dcs, sm_len = body[pos + 2], body[pos + 4]
        user_data = body[pos + 5:pos + 5 + sm_len]
        # the network's side: an SMS-DELIVER to the card (SMS-PP download, TS 31.111 §7.1.1)
        tpdu = build_sms_deliver(SmsDeliver(SmsAddress(source.decode(), 0x91), user_data,
                                            pid, dcs, tp_udhi=bool(esm & 0x40)))
        sim = self.sims[dest.decode()]
        resp = sim.transmit(stk.build_envelope_apdu(build_sms_pp_download(tpdu)), 0)
        if not (len(resp) == 2 and resp[0] == 0x61) or self.por == "never":
            return
        por = sim.transmit(bytes([0, 0xC0, 0, 0, resp[1]]), 0)[:-2]
        # the card's SMS-SUBMIT (PoR) as the SMSC hands it on: deliver_sm, UDHI, from the SIM
        deliver = (b"\x00" + b"\x01\x01" + dest + b"\x00" + b"\x01\x01" + source + b"\x00"
                   + bytes((0x40, 0x7F, 0)) + b"\x00\x00" + bytes((0, 0, 0xF6, 0, len(por)))
                   + por)
        if isinstance(self.por, float):
            await asyncio.sleep(self.por)
        for _ in range(2 if self.por == "twice" else 1):
            self._seq += 1
            writer.write(self.pdu(0x00000005, 0, self._seq, deliver))
            await writer.drain()


@pytest.fixture
def smsc():
    fake = FakeSmsc().start()
    yield fake
    close_sms_centres()
    fake.stop()


def ota_tpdu(counter: int = 1) -> bytes:
    keys = OtaKeys(kic=KIC, kid=KID)
    return build_install_psk_sms(keys, counter=counter, psk=bytes(16), key_version=2,
                                 originating_address=SmsAddress(OTA_ADDR, 0x91))


# ---------------------------------------------------------------------------- the adapter


def test_submit_sm_fields_byte_for_byte(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    centre = SmppSmsCentre(smsc.url(por_wait_s=5), msisdns={ICCID: MSISDN})
    tpdu = ota_tpdu()
    por = centre.deliver(ICCID, tpdu)
    assert por is not None and por[:3] == bytes.fromhex("027100")
    user_data = parse_sms_deliver(tpdu).user_data
    assert user_data[:3] == bytes.fromhex("027000")  # UDH: command packet (TS 31.115 §4.2)
    assert smsc.submits == [
        b"\x00"                      # service_type: default
        + b"\x01\x01" + OTA_ADDR.encode() + b"\x00"  # source: the TP-OA, international/E.164
        + b"\x01\x01" + MSISDN.encode() + b"\x00"    # destination: the SIM's MSISDN
        + b"\x40"                    # esm_class: UDHI
        + b"\x7f"                    # protocol_id: SIM data download
        + b"\x00"                    # priority_flag
        + b"\x00" + b"\x00"          # schedule_delivery_time, validity_period: SMSC default
        + b"\x00"                    # registered_delivery: none (the PoR is the proof)
        + b"\x00"                    # replace_if_present_flag
        + b"\xf6"                    # data_coding: class 2, 8-bit
        + b"\x00"                    # sm_default_msg_id
        + bytes([len(user_data)]) + user_data]
    cid, _, _, body = smsc.received[0]
    assert cid == 0x00000009
    assert body == b"ztp-ota\x00" + PASSWORD.encode() + b"\x00OTA\x00\x34\x00\x00\x00"
    # the deliver_sm was acknowledged with the same sequence number
    smsc.wait_for(lambda: 0x80000005 in smsc.commands())
    centre.close()
    smsc.wait_for(lambda: 0x00000006 in smsc.commands())  # clean unbind


def test_por_twice_second_ignored(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    smsc.por = "twice"
    centre = SmppSmsCentre(smsc.url(por_wait_s=5), msisdns={ICCID: MSISDN})
    assert centre.deliver(ICCID, ota_tpdu()) is not None
    smsc.wait_for(lambda: smsc.commands().count(0x80000005) == 2)  # both acknowledged
    assert centre.stats["pors"] == 1 and centre.stats["pors_duplicate"] == 1
    centre.close()


def test_por_never_and_after_the_wait(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    smsc.por = "never"
    centre = SmppSmsCentre(smsc.url(por_wait_s=0.2), msisdns={ICCID: MSISDN})
    assert centre.deliver(ICCID, ota_tpdu(1)) is None
    smsc.por = 0.5  # comes, but after the wait: logged and ignored
    assert centre.deliver(ICCID, ota_tpdu(2)) is None
    smsc.wait_for(lambda: centre.stats["pors_unexpected"] == 1)
    centre.close()


def test_deliver_many_one_wait_for_all(smsc):
    iccids = ["8944502509180000014", "8944502509180000022", "8944502509180000030"]
    msisdns = {iccids[0]: "+447700900001", iccids[1]: "447700900002"}  # the third: unknown
    for iccid, msisdn in msisdns.items():
        smsc.sims[msisdn.removeprefix("+")] = card(iccid, PSK)
    smsc.por = 0.3  # each PoR 0.3 s after its submit_sm
    centre = SmppSmsCentre(smsc.url(por_wait_s=5), msisdns=msisdns)
    got = centre.deliver_many([(iccid, ota_tpdu()) for iccid in iccids])
    assert [por[:3] if por else None for por, _ in got] == [bytes.fromhex("027100")] * 2 + [None]
    assert [e for _, e in got][:2] == ["", ""] and "no MSISDN for SIM" in got[2][1]
    assert len(smsc.submits) == 2 and centre.stats["pors"] == 2
    centre.close()


def test_por_before_submit_sm_resp(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    smsc.por = "first"
    centre = SmppSmsCentre(smsc.url(por_wait_s=5), msisdns={ICCID: MSISDN})
    assert centre.deliver(ICCID, ota_tpdu()) is not None
    centre.close()


def test_unexpected_pdus_from_the_smsc(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    centre = SmppSmsCentre(smsc.url(por_wait_s=5), msisdns={ICCID: MSISDN})
    assert centre.deliver(ICCID, ota_tpdu()) is not None
    receipt = (b"\x00\x01\x01" + MSISDN.encode() + b"\x00\x01\x01" + OTA_ADDR.encode()
               + b"\x00" + bytes((0x04, 0, 0)) + b"\x00\x00" + bytes((0, 0, 0, 0, 3)) + b"id:")
    smsc.inject(FakeSmsc.pdu(0x00000103, 0, 501, b"x")  # data_sm: not supported
                + FakeSmsc.pdu(0x00000005, 0, 502, receipt)  # an SMSC delivery receipt
                + FakeSmsc.pdu(0x00000005, 0, 503, b"\x00\x01")  # truncated deliver_sm
                + FakeSmsc.pdu(0x00000015, 0, 504))  # enquire_link
    smsc.wait_for(lambda: any(r[2] == 504 for r in smsc.received))
    answers = {r[2]: r[:2] for r in smsc.received if 501 <= r[2] <= 504}
    assert answers == {501: (0x80000000, 0x03),  # generic_nack ESME_RINVCMDID
                       502: (0x80000005, 0), 503: (0x80000005, 0x08),  # ESME_RSYSERR
                       504: (0x80000015, 0)}
    assert centre.stats["pors"] == 1 and centre._sock is not None  # still bound
    assert centre.deliver(ICCID, ota_tpdu(2)) is not None
    centre.close()


def test_bind_refused_backoff_and_password_never_shown(smsc, caplog):
    caplog.set_level(logging.DEBUG)
    smsc.bind_status = 0x0E  # ESME_RINVPASWD
    now = [100.0]
    centre = SmppSmsCentre(smsc.url(), msisdns={ICCID: MSISDN}, clock=lambda: now[0])
    with pytest.raises(SmsTransportError, match="ESME_RINVPASWD") as err:
        centre.deliver(ICCID, ota_tpdu())
    with pytest.raises(SmsTransportError, match="next attempt in 1 s"):
        centre.deliver(ICCID, ota_tpdu())  # backoff: no connection attempted
    assert smsc.commands() == [0x00000009]
    now[0] += 1
    with pytest.raises(SmsTransportError, match="ESME_RINVPASWD"):
        centre.deliver(ICCID, ota_tpdu())
    with pytest.raises(SmsTransportError, match="next attempt in 2 s"):
        centre.deliver(ICCID, ota_tpdu())  # doubled
    texts = [str(err.value), repr(centre), caplog.text, repr(centre.config)]
    assert all(PASSWORD not in t for t in texts) and "ztp-ota@127.0.0.1" in str(err.value)


def test_reconnect_after_drop_and_enquire_link(smsc):
    smsc.sims[MSISDN] = card(ICCID, PSK)
    centre = SmppSmsCentre(smsc.url(por_wait_s=5, enquire_link_s=0.1),
                           msisdns={ICCID: MSISDN})
    assert centre.deliver(ICCID, ota_tpdu(1)) is not None
    smsc.wait_for(lambda: 0x00000015 in smsc.commands())  # keepalive on an idle link
    smsc.drop_connections()
    smsc.wait_for(lambda: centre._sock is None)
    assert centre.deliver(ICCID, ota_tpdu(2)) is not None  # bound again
    assert centre.stats["binds"] == 2
    centre.close()


def test_unknown_msisdn_and_urls(smsc, tmp_path):
    centre = SmppSmsCentre(smsc.url(), msisdns={})
    with pytest.raises(SmsTransportError, match="no MSISDN for SIM"):
        centre.deliver(ICCID, ota_tpdu())
    path = tmp_path / "msisdns.csv"
    path.write_text(f"# iccid,msisdn\n{ICCID},{MSISDN}\n")
    cfg = parse_smpp_url(f"smpp://a%40b:p%3Aw@smsc.example:2776?system_type=OTA"
                         f"&source_addr=12345&msisdns={path}&por_wait_s=12")
    assert (cfg.system_id, cfg.password, cfg.host, cfg.port, cfg.source_addr,
            cfg.por_wait_s) == ("a@b", "p:w", "smsc.example", 2776, "12345", 12.0)
    assert parse_smpp_url("smpp://a:b@h").port == 2775
    for bad in ("smpp://h:1", "smpp://a:b@h?colour=red", "smpp://a:123456789@h",
                "smpp://a:b@h?por_wait_s=-1"):
        with pytest.raises(SmppUrlError) as err:
            parse_smpp_url(bad)
        assert "123456789" not in str(err.value)


# ---------------------------------------------------------------------------- the service


def service(tmp_path, url_query: dict, smsc: FakeSmsc):
    path = tmp_path / "msisdns.csv"
    path.write_text(f"{ICCID},{MSISDN}\n")
    clock = FakeClock()
    sim = card(ICCID, PSK)
    smsc.sims[MSISDN] = sim
    settings = make_settings(tmp_path, clock, smsc.url(msisdns=path, **url_query))
    creds = bootstrap_credentials(settings)
    return clock, sim, settings, creds


def rotate_and_run(tmp_path, smsc, url_query, after=None):
    clock, sim, settings, creds = service(tmp_path, url_query, smsc)
    with TestClient(create_app(settings)) as http:
        admin = AdminClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        admin.request("POST", "/v1/sims/import", json=[{
            "iccid": ICCID, "psk": PSK.hex(), "tag": "1", "kic": KIC.hex(), "kid": KID.hex()}])
        assert admin.request("POST", "/v1/rotations",
                             json={"iccids": [ICCID]}).json()["started"] == 1
        summary = admin.request("POST", "/v1/rotations/run").json()
        rot = admin.request("GET", f"/v1/sims/{ICCID}/rotation").json()
        out = [summary, rot]
        if after is not None:
            out += after(admin, clock, sim)
    return out


def test_service_rotation_delivered_by_late_por(tmp_path, smsc):
    smsc.por = 0.3  # the PoR comes after 0.3 s, within the wait
    summary, rot = rotate_and_run(tmp_path, smsc, {"por_wait_s": 5})
    assert summary["sent"] == 1 and summary["por_installed"] == 1
    assert rot["state"] == "delivered"


def test_service_rotation_por_twice(tmp_path, smsc):
    smsc.por = "twice"
    summary, rot = rotate_and_run(tmp_path, smsc, {"por_wait_s": 5})
    assert summary["por_installed"] == 1 and rot["state"] == "delivered"
    smsc.wait_for(lambda: smsc.commands().count(0x80000005) == 2)
    centre = transport_from_settings(smsc.url(msisdns=tmp_path / "msisdns.csv",
                                              por_wait_s=5))
    assert centre.stats["pors_duplicate"] == 1  # the same session: the copy was ignored


def test_service_rotation_por_never_then_resent_on_schedule(tmp_path, smsc):
    smsc.por = "never"

    def after(admin, clock, sim):
        assert sim.state.psk_version == 2  # the SIM installed it; only the report is lost
        again = admin.request("POST", "/v1/rotations/run").json()
        assert again["sent"] == 0  # not due yet
        smsc.por = "now"
        clock.advance(601)  # the policy's first backoff (600 s)
        later = admin.request("POST", "/v1/rotations/run").json()
        return [later, admin.request("GET", f"/v1/sims/{ICCID}/rotation").json()]

    summary, rot, later, rot2 = rotate_and_run(tmp_path, smsc, {"por_wait_s": 0.2}, after)
    assert summary["sent"] == 1 and summary["no_por"] == 1
    assert rot["state"] == "pending"
    assert later["sent"] == 1 and later["por_installed"] == 1  # the card says installed again
    assert rot2["attempts"] == 2 and rot2["state"] == "delivered"
    assert len(smsc.submits) == 2 and smsc.submits[0] != smsc.submits[1]  # a new counter


def test_bad_smpp_url_refused_at_startup(monkeypatch, tmp_path):
    import click
    from ztp.service import Settings
    from ztp.service.cli import apply_settings_options

    bad = "smpp://ota:hunter2@127.0.0.1:1?colour=red"
    with pytest.raises(click.BadParameter, match="unknown parameter") as err:
        apply_settings_options(object(), bad, None, None)
    assert "hunter2" not in str(err.value)
    monkeypatch.setenv("ZTP_SMSC_URL", bad)
    monkeypatch.setenv("ZTP_MASTER_KEY_FILE", str(tmp_path / "k"))
    with pytest.raises(SmppUrlError, match="colour"):
        Settings.from_env(tmp_path, create_key=True)


def test_service_batch_over_smpp(tmp_path, smsc):
    path = tmp_path / "msisdns.csv"
    iccids = ["8944502509180000014", "8944502509180000022"]
    path.write_text("".join(f"{i},44770090000{n}\n" for n, i in enumerate(iccids)))
    settings = make_settings(tmp_path, FakeClock(), smsc.url(msisdns=path, por_wait_s=5))
    creds = bootstrap_credentials(settings)
    rows = []
    for n, iccid in enumerate(iccids):
        smsc.sims[f"44770090000{n}"] = card(iccid, PSK)
        rows.append({"iccid": iccid, "psk": PSK.hex(), "tag": "1", "kic": KIC.hex(),
                     "kid": KID.hex()})
    smsc.por = 0.2
    with TestClient(create_app(settings)) as http:
        admin = AdminClient(http=http)
        admin.login(creds.admin_id, creds.admin_secret)
        admin.request("POST", "/v1/sims/import", json=rows)
        batch = admin.request("POST", "/v1/rotations", json={"all": True}).json()["batch"]
        summary = admin.request("POST", "/v1/rotations/run").json()
        progress = admin.request("GET", f"/v1/rotations/batches/{batch}").json()
    assert summary["sent"] == 2 and summary["por_installed"] == 2
    assert progress["states"]["delivered"] == 2
