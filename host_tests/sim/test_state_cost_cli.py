"""Card state persistence, the cost model and the ``ztp sim`` command."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from ztp.cli import main
from ztp.sim import AppletStatus, CardState, CardStateError, CostModel, ResultCode, VirtualSim

from .conftest import EF_ICCID, ICCID, PSK, make_sim


def test_state_round_trip_and_permissions(tmp_path):
    path = tmp_path / "card.json"
    state = CardState.create(ICCID, PSK, "gw.example.net", 8443)
    state.device_id = b"\x01\x02"
    state.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["ef_iccid"] == EF_ICCID.hex() and doc["iccid"] == ICCID
    back = CardState.load(path)
    assert back == state and back.psk == PSK
    assert "psk" not in repr(back) and PSK.hex() not in repr(back)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_state_write_is_durable_file_then_rename_then_directory(tmp_path, monkeypatch):
    # Power-loss safety needs the file's bytes on disk before the rename, and the directory
    # (the rename) on disk after it: without the last fsync the old key may come back.
    steps = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        steps.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file")
        real_fsync(fd)

    def replace(src, dst):
        steps.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    CardState.create(ICCID, PSK, "gw.example.net", 8443).save(tmp_path / "card.json")
    assert steps == ["file", "rename", "dir"]


def test_sim_survives_restart(tmp_path):
    path = tmp_path / "card.json"
    make_sim().state.save(path)
    sim = VirtualSim.load(path)
    sim.transmit(bytes.fromhex("00A4040C0CF0706F646773616665320101"), 0)
    sim.transmit(bytes.fromhex("00DA02C00401020304"), 0)
    again = VirtualSim.load(path)
    assert again.state.device_id == bytes.fromhex("01020304")


def test_busy_state_on_load_becomes_interrupted(tmp_path):
    path = tmp_path / "card.json"
    state = make_sim().state
    state.status = AppletStatus.BUSY
    state.save(path)
    sim = VirtualSim.load(path)
    assert (sim.state.status, sim.state.result) == (AppletStatus.ERROR, ResultCode.INTERRUPTED)
    assert CardState.load(path).status == AppletStatus.ERROR


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="x"), "not a"),
        (lambda d: d.update(psk="00" * 15), "psk"),
        (lambda d: d.update(psk="zz"), "not hex"),
        (lambda d: d.update(ef_iccid="98440552908136983AF5"), "ef_iccid"),
        (lambda d: d.update(iccid="8944502509186389636"), "disagree"),
        (lambda d: d.update(port=0), "port"),
        (lambda d: d.update(host="bad host!"), "host"),
        (lambda d: d["applet"].update(body="00" * 256), "body"),
        (lambda d: d["counters"].update(bogus=1), "counters"),
    ],
)
def test_bad_state_files(tmp_path, mutate, message):
    doc = make_sim().state.to_json()
    mutate(doc)
    path = tmp_path / "card.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CardStateError, match=message):
        CardState.load(path)


def test_not_json(tmp_path):
    path = tmp_path / "card.json"
    path.write_text("{")
    with pytest.raises(CardStateError, match="not JSON"):
        CardState.load(path)


def test_cost_model_matches_published_sim_link_figures():
    slow = CostModel()
    assert round(slow.bits_per_second) == 9600
    # 255-byte APDU: ~330 ms at 9600 bit/s, ~28 ms after PPS 512/16 (SAFE2-PROTOCOL.md)
    assert slow.transfer_ms(5 + 255, 2) == pytest.approx(330, abs=5)
    assert slow.after_pps().transfer_ms(5 + 255, 2) == pytest.approx(28, abs=1)
    assert slow.crypto_ms(sha256_blocks=4) == pytest.approx(13)
    assert slow.crypto_ms(aes_blocks=16) == pytest.approx(8)
    with pytest.raises(ValueError):
        CostModel(f=373)


def test_cost_reported_per_apdu(sim):
    sim.transmit(bytes.fromhex("0070000001"), 0)
    small = sim.last_cost_ms
    sim.transmit(bytes.fromhex("00A4040C0CF0706F646773616665320101"), 0)
    assert sim.last_cost_ms > small
    sim.cost_model = sim.cost_model.after_pps()
    sim.transmit(bytes.fromhex("00A4040C0CF0706F646773616665320101"), 0)
    assert sim.last_cost_ms < small


def test_cli_init_show_apdu(tmp_path):
    path = tmp_path / "card.json"
    runner = CliRunner()
    r = runner.invoke(
        main,
        [
            "sim",
            "init",
            str(path),
            "--iccid",
            ICCID,
            "--psk-hex",
            PSK.hex(),
            "--host",
            "127.0.0.1",
            "--port",
            "8443",
        ],
    )
    assert r.exit_code == 0, r.output
    assert EF_ICCID.hex() in r.output and PSK.hex() not in r.output
    r = runner.invoke(main, ["sim", "init", str(path), "--iccid", ICCID, "--host", "x"])
    assert r.exit_code != 0 and "exists" in r.output
    r = runner.invoke(main, ["sim", "show", str(path)])
    assert r.exit_code == 0 and ICCID in r.output and PSK.hex() not in r.output
    r = runner.invoke(main, ["sim", "apdu", str(path), "00A4000C022FE2", "00B000000A"])
    assert r.exit_code == 0, r.output
    assert EF_ICCID.hex().upper() + "9000" in r.output
    r = runner.invoke(
        main, ["sim", "init", str(tmp_path / "b.json"), "--iccid", "123", "--host", "h"]
    )
    assert r.exit_code != 0 and "ICCID" in r.output
