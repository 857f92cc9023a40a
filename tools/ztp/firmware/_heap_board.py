"""The board's tables for the heap run's doubles, generated from the sources that build the
board's image, so that the host `machine` double refuses and accepts what the samd port does.

Inputs (MicroPython v1.28.0 tree + this repository's board definition):
  ports/samd/mcu/samd21/pin-af-table.csv  per CPU pin: EIC, ADC0 channel, SERCOM on peripheral
      C ("SERCOM1" column) and D ("SERCOM2"), each cell device << 4 | pad (make-pins.py)
  lib/asf4/samd21/include/pio/<mcu>.h     which CPU pins the package has (`PIN_PAnn`: the
      samd port's Pin.cpu holds only those, make-pins.py `enable_macro`)
  firmware/boards/<BOARD>/pins.csv         board names (Pin.board); `-NAME` hidden
  firmware/boards/<BOARD>/mpconfigboard.h  MICROPY_HW_UART_RTSCTS, MICROPY_HW_UART_TXBUF,
      MICROPY_HW_DEFAULT_UART_ID / _I2C_ID, `#define pin_TX pin_X` defaults
  firmware/boards/<BOARD>/mpconfigtrim.h   what the board turns off (every MICROPY_* but the
      machine module's and the hardware's)
When the board directory does not exist yet, the generic SAMD21G18A is described (CPU names
only, samd21 defaults: no RTS/CTS, TX ring on, no default UART/I2C ids).

Outputs: `_ztp_board.py` (frozen into the heap run, read by machine.py; every table is a
constant tuple or bytes literal, so it sits in ROM, not on the heap) and `ztp_board_config.h`
(the trims and the board's names, included by firmware/host/mpconfigvariant.h).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SAMD21_MCU_H = "mpconfigmcu.h"
N_PINS = 64  # pin id = port * 32 + number; SAMD21 has ports A and B
_PIN_RE = re.compile(r"^P([AB])(\d\d)$")


class BoardTableError(Exception):
    """A board file or the pin table could not be read (the message names the file)."""


def pin_id(name: str) -> int:
    m = _PIN_RE.match(name)
    if not m:
        raise BoardTableError(f"not a SAMD21 CPU pin name: {name!r}")
    return (ord(m.group(1)) - ord("A")) * 32 + int(m.group(2))


@dataclass
class BoardTables:
    board_name: str
    mcu: str
    cpu: dict[int, str] = field(default_factory=dict)  # pin id -> CPU name (on the package)
    board: list[tuple[str, int]] = field(default_factory=list)  # (board name, pin id)
    sercom_c: bytearray = field(default_factory=lambda: bytearray(b"\xff" * N_PINS))
    sercom_d: bytearray = field(default_factory=lambda: bytearray(b"\xff" * N_PINS))
    adc: bytearray = field(default_factory=lambda: bytearray(b"\xff" * N_PINS))
    rtscts: int = 0
    txbuf: int = 1
    default_uart: int = -1
    default_i2c: int = -1
    uart_tx: int = 255
    uart_rx: int = 255
    i2c_scl: int = 255
    i2c_sda: int = 255
    trims: list[tuple[str, str]] = field(default_factory=list)  # (macro, value)


def _defines(text: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(r"^\s*#define\s+(\w+)\s+(.+?)\s*(?://.*)?$", text, re.M):
        out[m.group(1)] = m.group(2).strip()
    return out


def _int_value(v: str) -> int:
    return int(v.strip("()").strip(), 0)


def read_tables(tree: Path, board_dir: Path | None) -> BoardTables:
    """Read the pin table, the package's pins and the board definition (see the module doc).

    Raises:
        BoardTableError: a file exists but cannot be parsed.
    """
    mcu = "SAMD21G18A"
    board_h: dict[str, str] = {}
    name = "generic SAMD21G18A"
    if board_dir is not None and (board_dir / "mpconfigboard.h").exists():
        board_h = _defines((board_dir / "mpconfigboard.h").read_text())
        mk = (board_dir / "mpconfigboard.mk").read_text() if (
            board_dir / "mpconfigboard.mk").exists() else ""
        m = re.search(r"^CMSIS_MCU\s*\??=\s*(\S+)", mk, re.M)
        if m:
            mcu = m.group(1)
        name = board_h.get("MICROPY_HW_BOARD_NAME", name).strip('"')
    t = BoardTables(board_name=name, mcu=mcu)

    pio = tree / "lib" / "asf4" / "samd21" / "include" / "pio" / f"{mcu.lower()}.h"
    try:
        on_package = set(re.findall(r"^#define\s+PIN_(P[AB]\d\d)\s", pio.read_text(), re.M))
    except OSError as e:
        raise BoardTableError(f"{pio}: {e}") from e

    af = tree / "ports" / "samd" / "mcu" / "samd21" / "pin-af-table.csv"
    try:
        rows = list(csv.reader(af.read_text().splitlines()))
    except OSError as e:
        raise BoardTableError(f"{af}: {e}") from e
    header: list[str] | None = None
    for row in rows:
        if not row or row[0].startswith("#"):
            continue
        if header is None:
            header = [c.strip() for c in row]
            continue
        cpu = row[0].strip()
        if not _PIN_RE.match(cpu) or cpu not in on_package:
            continue
        pid = pin_id(cpu)
        t.cpu[pid] = cpu
        cells = dict(zip(header, (c.strip() for c in row), strict=False))
        if cells.get("ADC0"):
            t.adc[pid] = int(cells["ADC0"])
        if cells.get("SERCOM1"):
            t.sercom_c[pid] = int(cells["SERCOM1"], 16)
        if cells.get("SERCOM2"):
            t.sercom_d[pid] = int(cells["SERCOM2"], 16)
    if header is None or "SERCOM1" not in header or "SERCOM2" not in header:
        raise BoardTableError(f"{af}: no SERCOM1/SERCOM2 columns")

    if board_dir is not None and (board_dir / "pins.csv").exists():
        for line in (board_dir / "pins.csv").read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            bname, _, cpu = (p.strip() for p in line.partition(","))
            if bname.startswith("-"):
                continue  # hidden: not in Pin.board
            if cpu.startswith("-"):
                cpu = cpu[1:]
            pid = pin_id(cpu)
            if pid not in t.cpu:
                raise BoardTableError(f"{board_dir / 'pins.csv'}: {bname} on {cpu}, which "
                                      f"{mcu} does not have")
            t.board.append((bname, pid))

    board_pins = dict(t.board)
    t.rtscts = _int_value(board_h.get("MICROPY_HW_UART_RTSCTS", "0"))  # SAMD21_EXTRA_FEATURES
    t.txbuf = _int_value(board_h.get("MICROPY_HW_UART_TXBUF", "1"))
    t.default_uart = _int_value(board_h.get("MICROPY_HW_DEFAULT_UART_ID", "-1"))
    t.default_i2c = _int_value(board_h.get("MICROPY_HW_DEFAULT_I2C_ID", "-1"))

    def alias(macro: str, fallback: str) -> int:
        # `#define pin_TX pin_GSM_TX` in mpconfigboard.h, else a board pin of that name
        # (make-pins.py defines pin_<NAME> for every board pin)
        v = board_h.get(macro)
        target = v[4:] if v and v.startswith("pin_") else fallback
        return board_pins.get(target, 255)

    t.uart_tx, t.uart_rx = alias("pin_TX", "TX"), alias("pin_RX", "RX")
    t.i2c_scl, t.i2c_sda = alias("pin_SCL", "SCL"), alias("pin_SDA", "SDA")

    trim = board_dir / "mpconfigtrim.h" if board_dir is not None else None
    if trim is not None and trim.exists():
        for macro, value in _defines(trim.read_text()).items():
            # machine is the double (its classes follow the board's tables, not macros);
            # MICROPY_HW_* are hardware; everything else is mirrored
            if macro.startswith("MICROPY_") and not macro.startswith(
                    ("MICROPY_PY_MACHINE", "MICROPY_HW_")):
                t.trims.append((macro, value))
    return t


def render_python(t: BoardTables) -> str:
    cpu = tuple(t.cpu.get(i, "") for i in range(N_PINS))
    lines = [
        "# _ztp_board: generated by tools/ztp/firmware/_heap_board.py (do not edit); the",
        "# board's pin and peripheral tables for the machine double (firmware/host/machine.py).",
        "# Pin id = port * 32 + number. SERCOM_C/SERCOM_D: peripheral C/D (pin-af-table.csv",
        "# columns SERCOM1/SERCOM2), device << 4 | pad, 0xff none. ADC: ADC0 channel, 0xff none.",
        f"BOARD_NAME = {t.board_name!r}",
        f"MCU = {t.mcu!r}",
        f"CPU_NAMES = {cpu!r}",
        f"BOARD_NAMES = {tuple(n for n, _ in t.board)!r}",
        f"BOARD_IDS = {bytes(p for _, p in t.board)!r}",
        f"SERCOM_C = {bytes(t.sercom_c)!r}",
        f"SERCOM_D = {bytes(t.sercom_d)!r}",
        f"ADC = {bytes(t.adc)!r}",
        "SERCOM_INST_NUM = 6",
        f"UART_RTSCTS = {t.rtscts}",
        f"UART_TXBUF = {t.txbuf}",
        f"DEFAULT_UART_ID = {t.default_uart}",
        f"DEFAULT_I2C_ID = {t.default_i2c}",
        f"UART_TX = {t.uart_tx}",
        f"UART_RX = {t.uart_rx}",
        f"I2C_SCL = {t.i2c_scl}",
        f"I2C_SDA = {t.i2c_sda}",
    ]
    return "\n".join(lines) + "\n"


def render_header(t: BoardTables) -> str:
    lines = ["// ztp_board_config.h: generated by tools/ztp/firmware/_heap_board.py (do not",
             f"// edit): what {t.board_name}'s mpconfigtrim.h changes, for the heap run,",
             "// and its names (os.uname().machine is \"<board> with <mcu>\").",
             f"#define MICROPY_HW_BOARD_NAME {json.dumps(t.board_name)}",
             f"#define MICROPY_HW_MCU_NAME {json.dumps(t.mcu)}"]
    for macro, value in t.trims:
        lines += [f"#undef {macro}", f"#define {macro} {value}"]
    return "\n".join(lines) + "\n"


def write_generated(tree: Path, board_dir: Path | None, out: Path) -> BoardTables:
    """Write `_ztp_board.py` and `ztp_board_config.h` into `out`; returns the tables."""
    t = read_tables(tree, board_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "_ztp_board.py").write_text(render_python(t))
    (out / "ztp_board_config.h").write_text(render_header(t))
    return t
