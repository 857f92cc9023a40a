"""The board definition against the SAMD21 pin table of the MicroPython tree it is built from:
the modem UART is SERCOM4 (pads 0-3 on PA12-PA15, with RTS on pad 2 and CTS on pad 3 as
machine_uart.c requires) and I2C keeps SERCOM2 (SDA pad 0, SCL pad 1 as machine_i2c.c
requires), so both work at once. Fast: no build."""

from __future__ import annotations

import csv
import re

import pytest
from ztp.firmware._image import BOARD_DIR
from ztp.firmware._source import SourceError, micropython_tree

from ..peers import missing

# ArduinoCore-samd variants/mkrgsm1400 (variant.cpp g_APinDescription, variant.h)
_VARIANT = {
    "GSM_TX": "PA12", "GSM_RX": "PA13", "GSM_RTS": "PA14", "GSM_CTS": "PA15",
    "GSM_RESETN": "PB08", "GSM_DTR": "PA28", "PMIC_IRQ": "PA27", "ADC_VBAT": "PB09",
    "SDA": "PA08", "SCL": "PA09", "LED": "PA20", "D6": "PA20", "D11": "PA08", "D12": "PA09",
    "D0": "PA22", "D1": "PA23", "D13": "PB23", "D14": "PB22", "A0": "PA02", "A6": "PA07",
    "USB_DM": "PA24", "USB_DP": "PA25",
}


def _board_pins() -> dict[str, str]:
    pins = {}
    for line in (BOARD_DIR / "pins.csv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, cpu = line.split(",")
            assert name not in pins, f"{name} twice"
            pins[name] = cpu
    return pins


@pytest.fixture(scope="module")
def sercoms() -> dict[str, set[tuple[int, int]]]:
    """cpu pin -> {(sercom, pad)} from ports/samd/mcu/samd21/pin-af-table.csv (columns
    SERCOM1 = peripheral C, SERCOM2 = peripheral D; high nibble device, low nibble pad)."""
    try:
        tree = micropython_tree()
    except SourceError as e:
        missing(str(e))
    table = tree / "ports" / "samd" / "mcu" / "samd21" / "pin-af-table.csv"
    rows = [r for r in csv.reader(table.read_text().splitlines())
            if r and re.match(r"P[A-D]\d\d$", r[0])]
    out = {}
    for r in rows:
        out[r[0]] = {(int(c, 16) >> 4, int(c, 16) & 15) for c in r[3:5] if c}
    return out


def test_pins_are_the_arduino_variants() -> None:
    pins = _board_pins()
    for name, cpu in _VARIANT.items():
        assert pins.get(name) == cpu, name
    # all 15 digital and 7 analog header pins
    assert {f"D{i}" for i in range(15)} | {f"A{i}" for i in range(7)} <= set(pins)
    # TX/RX would become UART()'s default pins; the header's D13/D14 are SERCOM5, not UART 4
    assert "TX" not in pins and "RX" not in pins


def test_every_pin_is_in_the_samd21_table(sercoms) -> None:
    for name, cpu in _board_pins().items():
        assert cpu in sercoms, f"{name}: {cpu} not a SAMD21G18 pin in pin-af-table.csv"


def test_modem_uart_is_sercom4_and_i2c_sercom2(sercoms) -> None:
    pins = _board_pins()
    # machine_uart.c: TX pad 0, RX pad 1 here, RTS pad 2 and CTS pad 3 (TXPO 2)
    for name, pad in (("GSM_TX", 0), ("GSM_RX", 1), ("GSM_RTS", 2), ("GSM_CTS", 3)):
        assert (4, pad) in sercoms[pins[name]], name
    # machine_i2c.c: SDA pad 0, SCL pad 1
    assert (2, 0) in sercoms[pins["SDA"]] and (2, 1) in sercoms[pins["SCL"]]
    # no pin shared between the two buses
    assert not {pins[n] for n in ("GSM_TX", "GSM_RX", "GSM_RTS", "GSM_CTS")} & {
        pins["SDA"], pins["SCL"]}


def test_board_config_names_the_layout() -> None:
    h = (BOARD_DIR / "mpconfigboard.h").read_text()
    for define, value in (("MICROPY_HW_BOARD_NAME", '"Arduino MKR GSM 1400"'),
                          ("MICROPY_HW_MCU_NAME", '"SAMD21G18A"'),
                          ("MICROPY_HW_XOSC32K", "(1)"), ("MICROPY_HW_UART_RTSCTS", "(1)"),
                          ("MICROPY_HW_DEFAULT_UART_ID", "(4)"),
                          ("MICROPY_HW_DEFAULT_I2C_ID", "(2)")):
        assert re.search(rf"^#define {define}\s+{re.escape(value)}$", h, re.M), define
