"""The card core is pure and its holder persists: ``Uicc.transmit`` reports a state change and
writes nothing; ``VirtualSim`` writes the state file before it releases the answer, and meters
each APDU. The job's states move only along the table."""

from __future__ import annotations

import json

import pytest
from ztp.sim import (
    ATR,
    CardAnswer,
    CardState,
    CostMeter,
    CostModel,
    CryptoWork,
    JobState,
    Uicc,
    VirtualSim,
)

from .conftest import DEVICE_ID, ICCID, PSK

SELECT_SAFE2 = bytes.fromhex("00A4040C0CF0706F646773616665320101")
SET_DEVICE_ID = bytes.fromhex("00DA02C010") + DEVICE_ID


def test_core_reports_state_changes_and_does_no_io(tmp_path):
    path = tmp_path / "card.json"
    CardState.create(ICCID, PSK, "192.0.2.10", 8443).save(path)
    before = path.read_bytes()
    card = Uicc(CardState.load(path))
    assert card.power_on() == CardAnswer(ATR, False)
    assert card.transmit(SELECT_SAFE2, 0) == CardAnswer(b"\x90\x00", False)
    assert card.transmit(SET_DEVICE_ID, 0) == CardAnswer(b"\x90\x00", True)
    assert card.state.device_id == DEVICE_ID
    assert path.read_bytes() == before  # the core never writes the file


def test_holder_persists_before_releasing_the_answer(tmp_path, monkeypatch):
    path = tmp_path / "card.json"
    CardState.create(ICCID, PSK, "192.0.2.10", 8443).save(path)
    sim = VirtualSim.load(path)
    sim.transmit(SELECT_SAFE2, 0)
    seen: list[str | None] = []
    real_save = CardState.save

    def save(state, p=None):
        real_save(state, p)
        seen.append(json.loads(path.read_text())["device_id"])

    monkeypatch.setattr(CardState, "save", save)
    assert sim.transmit(SET_DEVICE_ID, 0) == b"\x90\x00"
    assert seen == [DEVICE_ID.hex()]  # written (once) before transmit returned
    assert sim.transmit(SELECT_SAFE2, 0) == b"\x90\x00"
    assert seen == [DEVICE_ID.hex()]  # no change, no write


def test_failed_write_withholds_the_answer(tmp_path, monkeypatch):
    path = tmp_path / "card.json"
    CardState.create(ICCID, PSK, "192.0.2.10", 8443).save(path)
    sim = VirtualSim.load(path)
    sim.transmit(SELECT_SAFE2, 0)

    def fail(state, p=None):
        raise OSError("disk full")

    monkeypatch.setattr(CardState, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        sim.transmit(SET_DEVICE_ID, 0)


def test_meter_charges_crypto_to_the_apdu_that_did_it():
    work = CryptoWork()
    meter = CostMeter(CostModel(), work)
    plain = meter.apdu(5, 2)
    assert plain == pytest.approx(CostModel().apdu_ms(5, 2))
    work.sha256_blocks += 4
    work.aes_blocks += 16
    assert meter.apdu(5, 2) == pytest.approx(plain + 13 + 8)
    assert meter.apdu(5, 2) == pytest.approx(plain)  # charged once
    assert meter.last_ms == pytest.approx(plain)


def test_job_states_move_only_along_the_table():
    from ztp.sim._job import Job
    from ztp.sim._request import Config, Request, RetryPolicy

    job = Job(
        Config(bytes(10), PSK, "192.0.2.10", 8443, DEVICE_ID, True),
        [Request("GET", "/")],
        telemetry=lambda: None,
        rng=lambda n: bytes(n),
        retry=RetryPolicy(),
        open_channels=lambda: (),
        work=CryptoWork(),
    )
    assert job.state == JobState.START
    with pytest.raises(RuntimeError, match="START -> HTTP"):
        job._set_state(JobState.HTTP)
    job._set_state(JobState.CONNECT)
    assert job.state == JobState.CONNECT
