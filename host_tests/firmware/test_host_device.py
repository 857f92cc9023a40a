"""Host-only tests: the `ztp device` adapter over a real socket (pyserial socket://), the
SAMD21 feature check, mpy-cross, and the MicroPython runtime run."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from fw_fakes import REFERENCE_BODY, FakeClock, FakeModem, FakeSim
from ztp.device import _features, _mpy
from ztp.device.cli import device_cmd


def _serve(modem: FakeModem, sock: socket.socket, stop: threading.Event) -> None:
    conn, _ = sock.accept()
    # a blocking server: nothing sets TCP_NODELAY for us (asyncio would, given IPPROTO_TCP),
    # and each answer written after another would wait for the client's delayed ACK
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(0.02)
    with conn:
        while not stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                data = None
            if data == b"":
                return
            if data:
                modem.write(data)
            n = len(modem._out)
            if n:
                buf = bytearray(n)
                modem.readinto(buf, n)
                conn.sendall(bytes(buf))


def _fake_over_tcp(**sim_kw):
    clock = FakeClock()
    sim = FakeSim(clock, REFERENCE_BODY, **sim_kw)
    modem = FakeModem(clock, sim)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    stop = threading.Event()
    t = threading.Thread(target=_serve, args=(modem, sock, stop), daemon=True)
    t.start()
    return sock, stop, t, sim, modem


def test_ztp_device_over_socket_url(tmp_path: Path) -> None:
    sock, stop, t, sim, modem = _fake_over_tcp()
    port = sock.getsockname()[1]
    r = CliRunner().invoke(device_cmd, ["--port", f"socket://127.0.0.1:{port}",
                                        "--config-dir", str(tmp_path), "--transcript"])
    stop.set()
    sock.close()
    assert r.exit_code == 0, r.output
    assert "provisioning: applied" in r.output
    assert '> AT+CSIM=10,"0070000001"' in r.output
    assert (tmp_path / "config.json").read_bytes() == REFERENCE_BODY
    assert sim.open == []


def test_ztp_device_applet_missing_exits_nonzero(tmp_path: Path) -> None:
    sock, stop, t, sim, modem = _fake_over_tcp(applet=False)
    port = sock.getsockname()[1]
    r = CliRunner().invoke(device_cmd, ["--port", f"socket://127.0.0.1:{port}",
                                        "--config-dir", str(tmp_path)])
    stop.set()
    sock.close()
    assert r.exit_code == 21
    assert "6A82" in r.output


def test_ztp_device_bad_port() -> None:
    r = CliRunner().invoke(device_cmd, ["--port", "socket://127.0.0.1:1"])
    assert r.exit_code != 0
    assert "cannot open" in r.output


def test_feature_check_clean_and_catches_violations() -> None:
    assert _features.check_files(_mpy.FIRMWARE_FILES) == []
    bad = _features.check_source(
        'x = f"{a}"\nimport errno\nfrom collections import deque\ns.partition(":")\n'
        's.startswith(("a", "b"))\nimport machine\ndef f(n):\n    return f(n)\n', "lib/x.py")
    text = "\n".join(bad)
    for needle in ("f-string", "errno", "deque", "partition", "tuple", "machine", "recursion"):
        assert needle in text


def test_mpy_cross_armv6m(tmp_path: Path) -> None:
    files = _mpy.build(tmp_path / "o3", "armv6m")
    assert {p.stem for p in files} == {p.stem for p in _mpy.LIB.glob("*.py")}
    # ztp build ships the frozen build's bytecode (-O3, no line-number tables): smaller than
    # the debugging build, so a board gets what the code goal is measured on
    debug = _mpy.build(tmp_path / "o0", "armv6m", opt=0)
    assert sum(p.stat().st_size for p in files) < sum(p.stat().st_size for p in debug)


@pytest.mark.micropython
@pytest.mark.skipif(os.environ.get("ZTP_FIRMWARE_CHECKED") == "1",
                    reason="already run by `ztp firmware-check` in ./run test")
def test_firmware_tests_pass_under_micropython() -> None:
    r = _mpy.run_tests()
    assert r.failed == 0 and r.passed >= 20, r.stdout
    h = _mpy.measure_heap()
    print(f"firmware heap for one provisioning: {h.firmware_alloc_bytes} bytes")
    assert h.firmware_alloc_bytes > 0


# --- timeouts and lost ports in the host `ztp device` path ---------------------------------
def test_run_provisioning_silent_modem_times_out_bounded(tmp_path: Path) -> None:
    from ztp.device._host import run_provisioning

    clock = FakeClock()
    modem = FakeModem(clock, FakeSim(clock))
    modem.silent = True
    logs: list[str] = []
    code, detail = run_provisioning(modem, bytes(16), tmp_path, attempts=2, clock=clock,
                                    log=logs.append)
    assert code == 10 and "modem silent" in detail
    # 2 attempts x 20 AT tries x 1 s, plus one backoff: bounded, in virtual time
    assert 40_000 <= clock.now <= 45_000
    assert modem.sent.count(b"AT") == 40


def test_run_provisioning_poll_deadline(tmp_path: Path) -> None:
    from ztp.device._host import run_provisioning

    clock = FakeClock()
    sim = FakeSim(clock, REFERENCE_BODY, never_done=True)
    modem = FakeModem(clock, sim)
    code, detail = run_provisioning(modem, bytes(16), tmp_path, poll_deadline_ms=30_000,
                                    clock=clock)
    assert code == 32 and "30000 ms" in detail
    assert clock.now < 40_000
    assert sim.open == []                      # channel closed on the way out
    assert not (tmp_path / "config.json").exists()


def test_ztp_device_poll_deadline_exit_code(tmp_path: Path) -> None:
    sock, stop, t, sim, modem = _fake_over_tcp(never_done=True)
    port = sock.getsockname()[1]
    r = CliRunner().invoke(device_cmd, ["--port", f"socket://127.0.0.1:{port}",
                                        "--config-dir", str(tmp_path), "--poll-deadline", "2"])
    stop.set()
    sock.close()
    assert r.exit_code == 32, r.output
    assert "SIM not done within 2000 ms" in r.output
    assert sim.open == []


def test_ztp_device_port_lost_mid_run_exits_10(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def serve() -> None:
        conn, _ = sock.accept()
        conn.recv(100)
        conn.sendall(b"\r\nOK\r\n")
        conn.close()                            # the modem goes away after one answer

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    port = sock.getsockname()[1]
    r = CliRunner().invoke(device_cmd, ["--port", f"socket://127.0.0.1:{port}",
                                        "--config-dir", str(tmp_path)])
    sock.close()
    assert r.exit_code == 10, r.output
    assert "lost the modem port" in r.output
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)


def test_micropython_runner_skips_host_only_files() -> None:
    mods = _mpy.test_modules()
    assert "test_fw_properties" not in mods
    assert {"test_fw_at", "test_fw_apdu", "test_fw_config", "test_fw_apply"} <= set(mods)


def _mpremote_args(cmd: list[str]) -> list[list[str]]:
    # the mpremote command line split at "+" into its actions (after `connect PORT`)
    i = cmd.index("connect")
    actions, cur = [], []
    for a in cmd[i + 2:]:
        if a == "+":
            actions.append(cur)
            cur = []
        else:
            cur.append(a)
    actions.append(cur)
    return actions


def _flash(monkeypatch, tmp_path: Path, *args: str) -> list[list[str]]:
    import subprocess

    from ztp.device import cli as device_cli

    calls = []

    class Done:
        returncode = 0

    def run(cmd, *a, **kw):
        calls.append(cmd)
        return Done()

    def fake_build(out_dir: Path, march: str = "armv6m"):
        out_dir.mkdir(parents=True)
        for n in ("apdu", "at"):
            (out_dir / f"{n}.mpy").write_bytes(b"M")
        return sorted(out_dir.iterdir())

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(_mpy, "build", fake_build)
    # a lib/ with bytecode caches next to the sources, as pytest leaves it
    lib = tmp_path / "lib"
    (lib / "__pycache__").mkdir(parents=True)
    (lib / "__pycache__" / "apdu.cpython-311.pyc").write_bytes(b"x")
    for n in ("apdu.py", "at.py"):
        (lib / n).write_text("x = 1\n")
    (lib / "notes.txt").write_text("not a module\n")
    monkeypatch.setattr(device_cli, "FIRMWARE", tmp_path)
    r = CliRunner().invoke(device_cli.flash_cmd, list(args))
    assert r.exit_code == 0, r.output
    assert len(calls) == 1
    return calls[0]


def test_flash_is_idempotent_and_skips_pycache(monkeypatch, tmp_path):
    # before: `mkdir :lib` (fails when :lib exists) and `cp -r lib/. :lib/` (copies
    # lib/__pycache__ too)
    cmd = _flash(monkeypatch, tmp_path, "--port", "/dev/ttyACM0")
    assert cmd[cmd.index("connect") + 1] == "/dev/ttyACM0"
    actions = _mpremote_args(cmd)
    assert [a[0] for a in actions] == ["exec", "cp", "cp"]
    assert not any(a[0] in ("mkdir", "fs") for a in actions)
    assert "-r" not in cmd
    prep = actions[0][1]
    assert "os.mkdir('/lib')" in prep and "except OSError" in prep
    assert "endswith('.mpy')" in prep              # a stale build is removed
    compile(prep, "prep", "exec")                  # valid Python for the board
    cp = actions[1]
    assert cp[-1] == ":/lib/"
    assert [Path(p).name for p in cp[1:-1]] == ["apdu.py", "at.py"]
    assert not any("__pycache__" in a or a.endswith(".txt") for a in cmd)
    assert actions[2][-1] == ":" and [Path(p).name for p in actions[2][1:-1]] == [
        "boot.py", "main.py"]
    # the same command again: nothing in it depends on what is on the board
    again = _mpremote_args(_flash(monkeypatch, tmp_path / "again", "--port", "/dev/ttyACM0"))
    assert again[0] == actions[0]


def test_flash_mpy_copies_the_build_and_drops_stale_sources(monkeypatch, tmp_path):
    cmd = _flash(monkeypatch, tmp_path, "--mpy")
    actions = _mpremote_args(cmd)
    assert "endswith('.py')" in actions[0][1]      # sources would shadow the .mpy
    assert [Path(p).name for p in actions[1][1:-1]] == ["apdu.mpy", "at.mpy"]
