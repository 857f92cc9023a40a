"""Host-only: main.py -> ztpmain.run (REPL window, board, stored configuration, provisioning,
application loop) with a fake `machine` whose UART is the scripted SARA modem + SAFE2 SIM, a
fake `time` and an in-memory file system. main.py runs when executed, so it is executed from
source and stopped from the application loop once the configuration has been confirmed."""

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


SETTINGS = b'{"profile": "mkrgsm1400", "good_after_ms": 5000}'


def _run_main(monkeypatch: pytest.MonkeyPatch, rtscts: bool, settings: bytes | None = SETTINGS,
              prov_error: Exception | None = None):
    clock = fw_fakes.FakeClock(1000)
    sim = fw_fakes.FakeSim(clock, done_after_ms=2000)
    modem = fw_fakes.FakeModem(clock, sim)
    ram = fw_fakes.RamFs()
    if settings is not None:
        ram.files["/ztp/settings.json"] = settings
    fake_machine = FakeMachine(rtscts=rtscts, uart_factory=lambda: modem)
    ftime = FakeTime(clock)
    done: list[int] = []
    orig_run = provision.Provisioner.run

    def run(self):
        if prov_error is not None:
            done.extend([-1, clock.now])
            raise prov_error
        code = orig_run(self)
        done.append(code)
        done.append(clock.now)
        return code

    def sleep_ms(ms: int) -> None:
        ftime.sleeps.append(ms)
        fake_machine.events.append(("sleep", ms))
        clock.sleep_ms(ms)
        # the application loop sleeps 500 ms; stop it once past the confirmation
        if done and clock.now - done[1] > 62000:
            raise _Stop

    ftime.sleep_ms = sleep_ms
    time_mod = types.ModuleType("time")
    for name in ("ticks_ms", "ticks_us", "ticks_diff", "sleep_ms", "sleep_us"):
        setattr(time_mod, name, getattr(ftime, name))
    monkeypatch.setitem(sys.modules, "machine", fake_machine)
    monkeypatch.delitem(sys.modules, "board", raising=False)
    monkeypatch.delitem(sys.modules, "ztpmain", raising=False)
    monkeypatch.setattr(fw_fs, "OsFs", lambda: ram)
    monkeypatch.setattr(provision.Provisioner, "run", run)
    real_time = sys.modules["time"]
    src = (ROOT / "main.py").read_text()
    ns: dict = {"__name__": "main_under_test"}
    sys.modules["time"] = time_mod       # ztpmain and board bind it at import
    try:
        with pytest.raises(_Stop):
            exec(compile(src, str(ROOT / "main.py"), "exec"), ns)
    finally:
        sys.modules["time"] = real_time
        sys.modules.pop("board", None)
        sys.modules.pop("ztpmain", None)
    return done[0], fake_machine, modem, ram


def test_main_wiring_provisions_and_confirms(monkeypatch, capsys):
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    u = m.uarts[0]
    assert u.id == 4 and "rts" in u.kw
    assert b"AT&K0" not in modem.sent                # RTS/CTS in use
    assert ("wdt", 16384) in m.events and ("feed",) in m.events
    assert ("pin", "PB08", 1) in m.events            # modem started
    assert m.pins["PA20"].v == 1                     # iot:Alarm On applied
    assert ram.files["/ztp/config.json"] == fw_fakes.REFERENCE_BODY
    assert "result OK" in out and "configuration confirmed" in out
    assert "/ztp/trial" not in ram.files             # confirmed: no boot counter left


def test_pmic_and_rts_before_the_first_byte_to_the_modem(monkeypatch, capsys):
    for rtscts in (True, False):
        code, m, modem, ram = _run_main(monkeypatch, rtscts=rtscts)
        first_write = next(k for k, e in enumerate(m.events) if e[0] == "write")
        before = m.events[:first_write]
        assert ("i2c", 0x6B, 0x00, b"\x07") in before
        assert rtscts or ("pin", "PA14", 0) in before
        assert not rtscts or "rts" in m.uarts[0].kw


def test_repl_window_comes_before_the_watchdog(monkeypatch, capsys):
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True)
    i_window = m.events.index(("sleep", 2000))
    i_wdt = m.events.index(("wdt", 16384))
    assert i_window < i_wdt
    assert "Ctrl-C within 2000 ms" in capsys.readouterr().out


def test_main_wiring_without_rtscts_sends_at_k0(monkeypatch, capsys):
    code, m, modem, ram = _run_main(monkeypatch, rtscts=False)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    assert "rts" not in m.uarts[-1].kw
    assert b"AT&K0" in modem.sent
    assert "without RTS/CTS" in out


def test_an_unexpected_error_in_provisioning_does_not_reboot_loop(monkeypatch, capsys):
    # before: an OSError out of prov.run() ended main.py; with the watchdog armed the board
    # reset, ran into the same error, and so on
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, prov_error=OSError(5))
    out = capsys.readouterr().out
    assert "provisioning stopped by OSError" in out
    assert "configuration confirmed" in out and ("feed",) in m.events


def test_bad_settings_file_is_logged_and_defaults_used(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "machine", FakeMachine())
    monkeypatch.delitem(sys.modules, "board", raising=False)
    import ztpmain
    ram = fw_fakes.RamFs()
    for raw, said in ((b"[1, 2]", "not a JSON object"), (b"{", "ignored"),
                      (b'{"good_after_ms": "x"}', "wrong type"), (b"{" + b" " * 200 + b"}",
                                                                 "larger than")):
        ram.files["/ztp/settings.json"] = raw
        s = ztpmain.settings(ram)
        assert s["good_after_ms"] == 60000 and s["wdt_ms"] == 16384 and s["profile"] is None
        assert said in capsys.readouterr().out
    ram.files["/ztp/settings.json"] = b'{"profile": "generic", "repl_window_ms": 0}'
    s = ztpmain.settings(ram)
    assert s["profile"] == "generic" and s["repl_window_ms"] == 0
    sys.modules.pop("ztpmain", None)
    sys.modules.pop("board", None)
