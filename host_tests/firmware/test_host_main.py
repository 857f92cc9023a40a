"""Host-only: main.py's wiring (board -> modem link -> provisioning -> application loop) with
a fake `machine` whose UART is the scripted SARA modem + SAFE2 SIM, a fake `time` and an
in-memory file system. main.py runs main() when imported, so it is executed from source and
stopped from the application loop once the configuration has been confirmed."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import fs as fw_fs
import fw_fakes
import provision
import pytest
from test_fw_board import FakeMachine, FakeTime

ROOT = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    pass


def _run_main(monkeypatch: pytest.MonkeyPatch, rtscts: bool):
    clock = fw_fakes.FakeClock(1000)
    sim = fw_fakes.FakeSim(clock, done_after_ms=2000)
    modem = fw_fakes.FakeModem(clock, sim)
    ram = fw_fakes.RamFs()
    fake_machine = FakeMachine(rtscts=rtscts, uart_factory=lambda: modem)
    ftime = FakeTime(clock)
    done: list[int] = []
    orig_run = provision.Provisioner.run

    def run(self):
        code = orig_run(self)
        done.append(code)
        done.append(clock.now)
        return code

    def sleep_ms(ms: int) -> None:
        ftime.sleeps.append(ms)
        clock.sleep_ms(ms)
        # the application loop sleeps 500 ms; stop it once past the 60 s confirmation
        if done and clock.now - done[1] > 62000:
            raise _Stop

    ftime.sleep_ms = sleep_ms
    time_mod = types.ModuleType("time")
    for name in ("ticks_ms", "ticks_us", "ticks_diff", "sleep_ms"):
        setattr(time_mod, name, getattr(ftime, name))
    monkeypatch.setitem(sys.modules, "machine", fake_machine)
    monkeypatch.delitem(sys.modules, "board", raising=False)
    monkeypatch.setattr(fw_fs, "OsFs", lambda: ram)
    monkeypatch.setattr(provision.Provisioner, "run", run)
    real_time = sys.modules["time"]
    src = (ROOT / "main.py").read_text()
    ns: dict = {"__name__": "main_under_test"}
    sys.modules["time"] = time_mod       # main.py and board.py bind it at import
    try:
        with pytest.raises(_Stop):
            exec(compile(src, str(ROOT / "main.py"), "exec"), ns)
    finally:
        sys.modules["time"] = real_time
        sys.modules.pop("board", None)
    return done[0], fake_machine, modem, ram


def test_main_wiring_provisions_and_confirms(monkeypatch, capsys):
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    u = m.uarts[0]
    assert u.id == 2 and u.kw["rxbuf"] >= 600 and "rts" in u.kw
    assert b"AT&K0" not in modem.sent                # RTS/CTS in use
    assert ("wdt", 16000) in m.events and ("feed",) in m.events
    assert ("pin", "PB08", 1) in m.events            # modem started
    assert m.pins["PA20"].v == 1                     # iot:Alarm On applied
    assert ram.files["/ztp/config.json"] == fw_fakes.REFERENCE_BODY
    assert "result OK" in out


def test_main_wiring_without_rtscts_sends_at_k0(monkeypatch, capsys):
    code, m, modem, ram = _run_main(monkeypatch, rtscts=False)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    assert "rts" not in m.uarts[-1].kw
    assert b"AT&K0" in modem.sent
    assert "without RTS/CTS" in out
