"""The heap run's `machine` double (firmware/host/machine.py) refuses and accepts what the samd
port does (MicroPython v1.28.0 ports/samd: machine_uart.c, machine_wdt.c, pin_af.c), with the
MKR GSM 1400's tables, and costs the heap the port costs. Each check runs in the heap run's own
32-bit binary (the posix root still mounted: no power-up)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ztp.firmware._heap_board import read_tables
from ztp.firmware._heap_build import HostBuild
from ztp.firmware._heap_run import EXIT_RESET, EXIT_WDT
from ztp.firmware._source import micropython_tree

_PRELUDE = """
import gc, json, sys, time, machine
machine._setup()
def out(name, value):
    print(json.dumps([name, value]))
def err(f):
    try:
        f()
    except Exception as e:
        return type(e).__name__ + ": " + str(e)
    return "ok"
"""


def _run(build: HostBuild, tmp_path: Path, body: str, env: dict[str, str] | None = None,
         heap: str = "256K") -> subprocess.CompletedProcess[str]:
    script = tmp_path / "check.py"
    script.write_text(_PRELUDE + body)
    return subprocess.run([str(build.micropython), "-X", f"heapsize={heap}", str(script)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def _results(build: HostBuild, tmp_path: Path, body: str) -> dict[str, object]:
    r = _run(build, tmp_path, body)
    assert r.returncode == 0, r.stdout + r.stderr
    return {k: v for k, v in (json.loads(line) for line in r.stdout.splitlines())}


# machine_wdt.c set_timeout: clamp to 512..16384, then WDT->CONFIG.PER = log2i(ms) - 3
WDT_ROUNDING = [(1, 512), (511, 512), (512, 512), (1000, 512), (1023, 512), (1024, 1024),
                (5000, 4096), (8191, 4096), (8192, 8192), (16000, 8192), (16383, 8192),
                (16384, 16384), (60000, 16384)]


def test_wdt_rounds_as_the_samd_port(host_build: HostBuild, tmp_path: Path) -> None:
    body = "".join(f"machine.WDT(timeout={t}); out('{t}', machine._ev[6])\n"
                   for t, _ in WDT_ROUNDING)
    body += "out('singleton', machine.WDT(timeout=2000) is machine.WDT(0, 4000))\n"
    got = _results(host_build, tmp_path, body)
    assert {int(k): v for k, v in got.items() if k != "singleton"} == dict(WDT_ROUNDING)
    assert got["singleton"] is True


def test_wdt_not_fed_resets_the_board(host_build: HostBuild, tmp_path: Path) -> None:
    r = _run(host_build, tmp_path, "w = machine.WDT(timeout=512)\nw.feed()\n"
             "time.sleep_ms(700)\nmachine.Pin('PA20').value()\nprint('survived')\n")
    assert r.returncode == EXIT_WDT
    assert "machine-double: WDT reset: not fed within its period (512 ms)" in r.stderr
    assert "survived" not in r.stdout
    fed = _run(host_build, tmp_path, "w = machine.WDT(timeout=512)\nfor _ in range(8):\n"
               "    time.sleep_ms(100)\n    w.feed()\nprint('survived')\n")
    assert fed.returncode == 0 and "survived" in fed.stdout


def test_reset_ends_the_run(host_build: HostBuild, tmp_path: Path) -> None:
    r = _run(host_build, tmp_path, "try:\n    machine.reset()\nexcept Exception:\n"
             "    print('caught')\nmachine.Pin('PA20')\nprint('after')\n")
    assert r.returncode == EXIT_RESET
    assert "machine-double: machine.reset()" in r.stderr
    assert "caught" not in r.stdout and "after" not in r.stdout


def test_uart_rules_of_the_samd_port(host_build: HostBuild, tmp_path: Path) -> None:
    got = _results(host_build, tmp_path, """
U = machine.UART
out("ok", err(lambda: U(4, tx="PA12", rx="PA13")))
out("board names", err(lambda: U(4, tx="GSM_TX", rx="GSM_RX")))
out("pin objects", err(lambda: U(4, tx=machine.Pin("PA12"), rx=machine.Pin(13))))
out("rx default", err(lambda: U(4, tx="PA12")))
out("not same group", err(lambda: U(4, tx="PA12", rx="PB09")))
out("wrong sercom", err(lambda: U(3, tx="PA12", rx="PA13")))
out("tx on pad 1", err(lambda: U(4, tx="PA13", rx="PA12")))
out("no such uart", err(lambda: U(7, tx="PA12", rx="PA13")))
out("flow keyword", err(lambda: U(4, tx="PA12", rx="PA13", flow=3)))
out("bad keyword", err(lambda: U(4, tx="PA12", rx="PA13", rtscts=True)))
out("rts only", err(lambda: U(4, tx="PA12", rx="PA13", rts="PA14")))
out("rts cts", err(lambda: U(4, tx="PA12", rx="PA13", rts="PA14", cts="PA15")))
out("rxbuf too large", err(lambda: U(4, tx="PA12", rx="PA13", rxbuf=32767)))
out("txbuf too large", err(lambda: U(4, tx="PA12", rx="PA13", txbuf=40000)))
out("positional tx", err(lambda: U(4, 9600, 8, None, 1, "PA12")))
out("no constants", hasattr(U, "RTS") or hasattr(U, "CTS"))
for rxbuf, txbuf in ((-1, -1), (10, 31), (32, 32), (640, 256), (32766, 1000)):
    U(4, tx="PA12", rx="PA13", rxbuf=rxbuf, txbuf=txbuf)
    out("rings %d %d" % (rxbuf, txbuf), [len(machine._u_rx[4]), len(machine._u_tx[4])])
""")
    assert got["ok"] == got["board names"] == got["pin objects"] == "ok"
    assert got["rx default"] == "ok"  # pin_RX is GSM_RX on this board (mpconfigboard.h)
    assert got["not same group"] == "ValueError: invalid or missing rx/tx"
    assert got["wrong sercom"] == "ValueError: wrong serial device"
    assert got["tx on pad 1"] == "ValueError: invalid UART pin"
    assert got["no such uart"] == "ValueError: UART(7) doesn't exist"
    assert str(got["flow keyword"]).startswith("TypeError")
    assert str(got["bad keyword"]).startswith("TypeError")
    assert got["rts only"] == "ValueError: cts missing for flow control"
    assert got["rts cts"] == "ok"  # MICROPY_HW_UART_RTSCTS on this board
    assert got["rxbuf too large"] == "ValueError: rxbuf too large"
    assert got["txbuf too large"] == "ValueError: txbuf too large"
    assert str(got["positional tx"]).startswith("TypeError")  # tx= is keyword-only
    assert got["no constants"] is False
    # ringbuf_alloc(len + 1): default 256, clamped up to 32, up to 32766
    assert got["rings -1 -1"] == [257, 257]
    assert got["rings 10 31"] == [33, 33]
    assert got["rings 32 32"] == [33, 33]
    assert got["rings 640 256"] == [641, 257]
    assert got["rings 32766 1000"] == [32767, 1001]


def test_uart_costs_the_heap_the_port_costs(host_build: HostBuild, tmp_path: Path) -> None:
    # mp_obj_malloc(machine_uart_obj_t) (60 B: 4 blocks on the SAMD21) + ringbuf_alloc(641)
    # + ringbuf_alloc(257); Pin and WDT are constant objects there: nothing on the heap
    got = _results(host_build, tmp_path, """
def cost(f):
    gc.collect(); a = gc.mem_alloc()
    keep = f()
    gc.collect(); b = gc.mem_alloc()
    return b - a
out("uart", cost(lambda: machine.UART(4, tx="PA12", rx="PA13", rxbuf=640, timeout=0)))
out("pin", cost(lambda: machine.Pin("GSM_RESETN", machine.Pin.OUT, value=1)))
out("wdt", cost(lambda: machine.WDT(timeout=16000)))
out("uid", cost(lambda: machine.unique_id()))
""")
    blocks = 4 + -(-641 // 16) + -(-257 // 16)
    assert got["uart"] == blocks * 16
    assert got["pin"] == 0 and got["wdt"] == 0
    assert got["uid"] == 3 * 16  # mp_obj_new_bytes: str object + 17 bytes


def test_uart_write_returns_short_at_timeout_0(host_build: HostBuild, tmp_path: Path) -> None:
    # mp_machine_uart_write with a full TX ring: gives up at the first ms tick past
    # start + timeout and returns what it took. Nothing wired to PA22/PA23: the ring drains
    # into the void at the baud rate (9600 8N1: 960 B/s, about 1 byte per ms)
    got = _results(host_build, tmp_path, """
u = machine.UART(3, baudrate=9600, tx="PA22", rx="PA23", timeout=0)
out("t0", u.write(b"x" * 1000))
time.sleep_ms(400)                     # drains about 384 bytes: the ring is empty again
u = machine.UART(3, baudrate=9600, tx="PA22", rx="PA23", timeout=50)
t = time.ticks_ms(); n = u.write(b"x" * 1000); el = time.ticks_diff(time.ticks_ms(), t)
out("t50", [n, el])
out("empty write", u.write(b""))
u = machine.UART(3, baudrate=9600, tx="PA22", rx="PA23", timeout=0)
u.write(b"x" * 256)
out("full", u.write(b"y"))
out("read nothing", u.read(5))
out("any", u.any())
""")
    assert 256 <= got["t0"] <= 258
    n, el = got["t50"]
    assert 256 + 45 <= n <= 256 + 52 and el >= 50
    assert got["empty write"] is None
    assert got["full"] is None  # nothing taken: EAGAIN
    assert got["read nothing"] is None and got["any"] == 0


def test_pins_by_board_and_cpu_name(host_build: HostBuild, tmp_path: Path) -> None:
    got = _results(host_build, tmp_path, """
P = machine.Pin
out("same", P("GSM_RTS") is P("PA14") is P(14))
out("unknown", err(lambda: P("PA26")))
out("not on package", err(lambda: P("PB00")))
out("out with pull", err(lambda: P("PA20", P.OUT, P.PULL_UP)))
p = P("LED", P.OUT, value=1)
out("value", [p.value(), P("PA20").value()])
p.off()
out("off", p.value())
out("pull up", P("PA21", P.IN, P.PULL_UP).value())
out("consts", [P.IN, P.OUT, P.OPEN_DRAIN, P.PULL_UP, P.PULL_DOWN])
""")
    assert got["same"] is True
    assert got["unknown"] == got["not on package"] == "ValueError: not a Pin"
    assert got["out with pull"] == "ValueError: OUT incompatible with pull"
    assert got["value"] == [1, 1] and got["off"] == 0 and got["pull up"] == 1
    assert got["consts"] == [0, 1, 2, 1, 2]


def test_i2c_pmic_and_adc(host_build: HostBuild, tmp_path: Path) -> None:
    got = _results(host_build, tmp_path, """
i = machine.I2C(2, scl=machine.Pin("SCL"), sda=machine.Pin("SDA"), freq=100000)
out("scan", i.scan())
out("version", i.readfrom_mem(0x6B, 0x0A, 1)[0])
i.writeto_mem(0x6B, 0x00, b"\\x07")
i.writeto(0x6B, b"\\x01\\x1b\\x60")
buf = bytearray(3)
i.readfrom_mem_into(0x6B, 0x00, buf)
out("regs", list(buf))
out("writes", machine.pmic_writes())
out("absent", err(lambda: i.writeto_mem(0x50, 0, b"x")))
out("wrong pads", err(lambda: machine.I2C(2, scl="PA08", sda="PA09")))
out("wrong sercom", err(lambda: machine.I2C(1, scl="PA09", sda="PA08")))
out("vbat", machine.ADC(machine.Pin("ADC_VBAT")).read_u16())
out("no adc", err(lambda: machine.ADC(machine.Pin("PA12"))))
out("uid", machine.unique_id().hex())
""")
    assert got["scan"] == [0x60, 0x6B]
    assert got["version"] == 0x23
    assert got["regs"] == [0x07, 0x1B, 0x60]
    assert got["writes"] == [[0, 7], [1, 0x1B], [2, 0x60]]
    assert got["absent"] == "OSError: 19"
    assert got["wrong pads"] == "ValueError: invalid sda/scl pin"
    assert got["wrong sercom"] == "ValueError: wrong serial device"
    # 3.9 V through 330k/1M, 12 bits against 3.3 V: (2932 mV * 4095 // 3300) * 16
    assert got["vbat"] == (3900 * 1000 // 1330) * 4095 // 3300 * 16
    assert got["no adc"] == "ValueError: ADC pin used"
    assert got["uid"] == "00" * 16


@pytest.mark.parametrize("rtscts", [0, 1])
def test_board_tables_follow_mpconfigboard(tmp_path: Path, rtscts: int) -> None:
    # a board without MICROPY_HW_UART_RTSCTS: the double then refuses rts=/cts= (TypeError)
    board = tmp_path / "B"
    board.mkdir()
    (board / "mpconfigboard.h").write_text(
        f'#define MICROPY_HW_BOARD_NAME "B"\n#define MICROPY_HW_UART_RTSCTS ({rtscts})\n'
        "#define MICROPY_HW_DEFAULT_UART_ID (2)\n#define pin_TX pin_T\n")
    (board / "mpconfigboard.mk").write_text("CMSIS_MCU = SAMD21G18A\n")
    (board / "pins.csv").write_text("T,PA12\nR,PA13\n-HIDDEN,PA14\n")
    t = read_tables(micropython_tree(), board)
    assert t.rtscts == rtscts and t.default_uart == 2 and t.txbuf == 1
    assert t.uart_tx == 12 and t.uart_rx == 255  # no pin_RX, no board pin "RX"
    assert [n for n, _ in t.board] == ["T", "R"]
    assert t.sercom_c[12] == 0x20 and t.sercom_d[12] == 0x40  # PA12: SERCOM2/4 pad 0
    assert 26 not in t.cpu and 32 not in t.cpu  # PA26, PB00: not on the G18 package
