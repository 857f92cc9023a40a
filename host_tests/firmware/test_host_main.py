"""Host-only: main.py -> ztpmain.run (REPL window, board, stored configuration, provisioning,
application loop) with a fake `machine` whose UART is the scripted SARA modem + SAFE2 SIM, a
fake `time` and an in-memory file system. main.py runs when executed, so it is executed from
source and stopped from the application loop once the configuration has been confirmed."""

from __future__ import annotations

import json
import sys
import types
import zlib
from pathlib import Path

import fs as fw_fs
import fw_fakes
import provision
import pytest
from test_fw_board import FakeMachine, FakeTime

ROOT = Path(__file__).resolve().parents[2]


class _Stop(BaseException):
    # not an Exception: the firmware's "never stops the application" handlers must not eat it
    pass


SETTINGS = b'{"profile": "mkrgsm1400", "good_after_ms": 5000}'


def _run_main(monkeypatch: pytest.MonkeyPatch, rtscts: bool, settings: bytes | None = SETTINGS,
              prov_error: Exception | None = None, stop_after_ms: int = 62000,
              runs: list[tuple[int, int, int]] | None = None,
              files: dict[str, bytes] | None = None, between: object = None):
    """runs: filled with (start ms, result code or -1, end ms) per provisioning; files: seed
    files; between(run_index, sim): called before each provisioning (change the SIM's body,
    raise to make that run fail)."""
    clock = fw_fakes.FakeClock(1000)
    sim = fw_fakes.FakeSim(clock, done_after_ms=2000)
    modem = fw_fakes.FakeModem(clock, sim)
    ram = fw_fakes.RamFs()
    ram.files.update(files or {})
    if settings is not None:
        ram.files["/ztp/settings.json"] = settings
    fake_machine = FakeMachine(rtscts=rtscts, uart_factory=lambda: modem)
    ftime = FakeTime(clock)
    done: list[int] = []
    orig_run = provision.Provisioner.run

    record = runs if runs is not None else []

    def run(self):
        start = clock.now
        if prov_error is not None:
            done.extend([-1, clock.now])
            record.append((start, -1, clock.now))
            raise prov_error
        if between is not None:
            try:
                between(len(record), sim)
            except Exception:
                record.append((start, -1, clock.now))
                raise
        code = orig_run(self)
        done.append(code)
        done.append(clock.now)
        record.append((start, code, clock.now))
        return code

    def sleep_ms(ms: int) -> None:
        ftime.sleeps.append(ms)
        fake_machine.events.append(("sleep", ms))
        clock.sleep_ms(ms)
        # the application loop sleeps 500 ms; stop it once past the confirmation
        if done and clock.now - done[1] > stop_after_ms:
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


# --- issue 17: reports and re-provisioning while the application runs -------------------------
REPORT = "/ztp/report.json"
OFF_BODY = fw_fakes.REFERENCE_BODY.replace(b'"On"', b'"Off"').replace(b"2021-05-31", b"2021-06-01")


def _digest(body: bytes) -> str:
    return f"crc32:{zlib.crc32(body):08x}"


def _c1_reports(modem) -> list[dict]:
    return [json.loads(d) for d in modem.sim.telemetry]


def test_confirmation_is_reported_at_once_in_one_more_run(monkeypatch, capsys):
    runs: list[tuple[int, int, int]] = []
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, runs=runs)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    # the boot run had nothing to report; the run right after the confirmation sent
    # "confirmed" before its CA 00, and the service's answer removed it
    assert [c for _, c, _ in runs] == [provision.OK, provision.UNCHANGED]
    assert runs[1][0] - runs[0][2] < 5000 + 1000          # good_after_ms + one loop round
    assert _c1_reports(modem) == [{"v": 1, "digest": _digest(fw_fakes.REFERENCE_BODY),
                                   "outcome": "confirmed", "code": 0,
                                   "version": "2021-05-31"}]
    assert "report delivered" in out
    # that run's own outcome is the next report (sent with the next scheduled run)
    assert json.loads(ram.files[REPORT])["outcome"] == "unchanged"


def test_rollback_at_boot_is_reported_in_the_boot_run(monkeypatch, capsys):
    prev = fw_fakes.REFERENCE_BODY.replace(b'"On"', b'"Off"').replace(b"2021-05-31", b"2020-12-24")
    files = {"/ztp/config.json": OFF_BODY, "/ztp/config.prev": prev, "/ztp/trial": b"3"}
    runs: list[tuple[int, int, int]] = []
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, runs=runs, files=files)
    out = capsys.readouterr().out
    assert "rolling back" in out and code == provision.OK
    reports = _c1_reports(modem)
    assert reports[0] == {"v": 1, "digest": _digest(prev), "outcome": "rolled_back",
                          "code": 0, "version": "2020-12-24"}
    assert ram.files["/ztp/config.bad"] == OFF_BODY


def test_reprovisions_on_schedule_with_jitter(monkeypatch, capsys):
    settings = (b'{"profile": "mkrgsm1400", "good_after_ms": 5000, "reprovision_s": 100, '
                b'"jitter_s": 10, "repl_window_ms": 0}')
    runs: list[tuple[int, int, int]] = []
    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, settings=settings, runs=runs,
                                    stop_after_ms=700_000)
    out = capsys.readouterr().out
    assert code == provision.OK, out
    # boot run, the run after the confirmation, then one every 100 +- 10 s (+ a loop round)
    assert len(runs) >= 7
    gaps = [runs[i + 1][0] - runs[i][2] for i in range(1, len(runs) - 1)]
    assert all(90_000 <= g <= 110_500 for g in gaps), gaps
    assert len(set(gaps)) > 1                                # jittered, not a fixed period
    assert out.count("ztp: re-provisioning\n") == len(runs) - 1
    assert all(c == provision.UNCHANGED for _, c, _ in runs[1:])
    # every scheduled run reported the previous one's outcome (the digest says "in sync")
    assert [r["outcome"] for r in _c1_reports(modem)] == ["confirmed"] + ["unchanged"] * (
        len(runs) - 2)
    assert ("feed",) in m.events[-20:]


def test_reprovisioning_off_with_zero(monkeypatch, capsys):
    settings = b'{"profile": "mkrgsm1400", "good_after_ms": 5000, "reprovision_s": 0}'
    runs: list[tuple[int, int, int]] = []
    _run_main(monkeypatch, rtscts=True, settings=settings, runs=runs, stop_after_ms=300_000)
    assert len(runs) == 1                                    # the boot run only
    out = capsys.readouterr().out
    assert "configuration confirmed" in out and "re-provisioning" not in out


def test_a_failing_reprovision_never_stops_the_application(monkeypatch, capsys):
    settings = (b'{"profile": "mkrgsm1400", "good_after_ms": 5000, "reprovision_s": 60, '
                b'"jitter_s": 0, "repl_window_ms": 0}')
    runs: list[tuple[int, int, int]] = []

    def between(i: int, sim) -> None:
        if i == 2:
            raise OSError(5)             # a flash error in the first scheduled run
        sim.never_done = i == 3          # the SIM never finishes: E_DEADLINE

    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, settings=settings, runs=runs,
                                    stop_after_ms=450_000, between=between)
    out = capsys.readouterr().out
    assert "re-provisioning stopped by OSError" in out
    assert [c for _, c, _ in runs[:4]] == [provision.OK, provision.UNCHANGED, -1,
                                           provision.E_DEADLINE]
    assert len(runs) >= 5 and runs[4][1] == provision.UNCHANGED   # the schedule goes on
    # the application loop kept feeding the watchdog after the failures
    assert m.events[-1][0] in ("feed", "sleep") and ("feed",) in m.events[-10:]
    assert ram.files["/ztp/config.json"] == fw_fakes.REFERENCE_BODY


def test_a_configuration_changed_while_running_is_applied_and_confirmed(monkeypatch, capsys):
    settings = (b'{"profile": "mkrgsm1400", "good_after_ms": 5000, "reprovision_s": 60, '
                b'"jitter_s": 0, "repl_window_ms": 0}')
    runs: list[tuple[int, int, int]] = []

    def between(i: int, sim) -> None:
        if i == 2:
            sim.body = OFF_BODY          # the service rolls out a new configuration

    code, m, modem, ram = _run_main(monkeypatch, rtscts=True, settings=settings, runs=runs,
                                    stop_after_ms=100_000, between=between)
    out = capsys.readouterr().out
    codes = [c for _, c, _ in runs]
    assert codes[:4] == [provision.OK, provision.UNCHANGED, provision.OK, provision.UNCHANGED]
    assert m.pins["PA20"].v == 0                             # applied by its handler
    assert ram.files["/ztp/config.json"] == OFF_BODY
    assert ram.files["/ztp/config.prev"] == fw_fakes.REFERENCE_BODY
    assert "/ztp/trial" not in ram.files                     # confirmed, as at boot
    assert out.count("configuration confirmed") == 2
    # the run after the second confirmation reported it, with the new digest
    assert runs[3][0] - runs[2][2] < 5000 + 1000
    assert _c1_reports(modem)[-1] == {"v": 1, "digest": _digest(OFF_BODY),
                                      "outcome": "confirmed", "code": 0,
                                      "version": "2021-06-01"}
