"""`ztp flash --image/--board` for the MKR GSM 1400: the bossac command line it runs, seen by a
fake bossac on PATH that records its arguments (no hardware here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from ztp.device import cli as device_cli
from ztp.firmware._image import Image

# answers --help like Debian's bossa-cli 1.9.1 and records every other call
_FAKE = """#!/bin/sh
if [ "$1" = "--help" ]; then
  echo "Basic Open Source SAM-BA Application (BOSSA) Version {version}"
  exit 0
fi
{python} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "{log}"
exit {rc}
"""


def _fake_bossac(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str = "1.9.1",
                 rc: int = 0) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "bossac.log"
    exe = bindir / "bossac"
    exe.write_text(_FAKE.format(version=version, python=sys.executable, log=log, rc=rc))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def _bin(tmp_path: Path) -> Path:
    f = tmp_path / "firmware.bin"
    f.write_bytes(b"\xf8\x7f\x00\x20\x01\x21\x00\x00")
    return f


def test_flash_image_runs_bossac_at_offset_0x2000(tmp_path, monkeypatch):
    log = _fake_bossac(tmp_path, monkeypatch)
    image = _bin(tmp_path)
    r = CliRunner().invoke(device_cli.flash_cmd,
                           ["--image", str(image), "--port", "/dev/ttyACM0"])
    assert r.exit_code == 0, r.output
    assert _calls(log) == [["--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "--offset=0x2000",
                            "-R", str(image)]]
    assert "double-tap the RESET button" in r.output
    assert "0x07738135" in r.output  # why machine.bootloader() does not do it on the MKR
    assert "cp main.py boot.py :" in r.output  # the erase took the file system with it


def test_flash_image_needs_the_bootloaders_port(tmp_path, monkeypatch):
    log = _fake_bossac(tmp_path, monkeypatch)
    r = CliRunner().invoke(device_cli.flash_cmd, ["--image", str(_bin(tmp_path))])
    assert r.exit_code == 2
    assert "give --port" in r.output
    assert _calls(log) == []


def test_flash_image_refuses_bossac_before_1_9(tmp_path, monkeypatch):
    # BOSSA 1.7/1.8 add the 8 KB themselves: --offset=0x2000 would write at 0x4000
    log = _fake_bossac(tmp_path, monkeypatch, version="1.8")
    r = CliRunner().invoke(device_cli.flash_cmd,
                           ["--image", str(_bin(tmp_path)), "--port", "/dev/ttyACM0"])
    assert r.exit_code == 1
    assert "bossac 1.8.0 adds the 8 KB bootloader offset itself" in r.output
    assert _calls(log) == []


def test_flash_image_takes_only_the_bin(tmp_path, monkeypatch):
    log = _fake_bossac(tmp_path, monkeypatch)
    elf = tmp_path / "firmware.elf"
    elf.write_bytes(b"\x7fELF")
    r = CliRunner().invoke(device_cli.flash_cmd, ["--image", str(elf), "--port", "/dev/ttyACM0"])
    assert r.exit_code == 1
    assert "bossac writes the raw firmware.bin (not .elf)" in r.output
    assert _calls(log) == []


def test_flash_image_without_bossac_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    r = CliRunner().invoke(device_cli.flash_cmd,
                           ["--image", str(_bin(tmp_path)), "--port", "/dev/ttyACM0"])
    assert r.exit_code == 1
    assert "apt-get install bossa-cli" in r.output


def test_flash_image_reports_a_failed_bossac(tmp_path, monkeypatch):
    _fake_bossac(tmp_path, monkeypatch, rc=1)
    r = CliRunner().invoke(device_cli.flash_cmd,
                           ["--image", str(_bin(tmp_path)), "--port", "/dev/ttyACM1"])
    assert r.exit_code == 1
    assert "bossac failed (1)" in r.output and "/dev/ttyACM1" in r.output


def test_flash_image_does_not_take_mpy(tmp_path, monkeypatch):
    _fake_bossac(tmp_path, monkeypatch)
    r = CliRunner().invoke(device_cli.flash_cmd, ["--image", str(_bin(tmp_path)), "--mpy",
                                                  "--port", "/dev/ttyACM0"])
    assert r.exit_code == 2 and "lib/ frozen" in r.output


@pytest.mark.image
def test_flash_board_builds_the_image_and_writes_its_bin(image: Image, tmp_path, monkeypatch):
    log = _fake_bossac(tmp_path, monkeypatch)
    r = CliRunner().invoke(device_cli.flash_cmd,
                           ["--board", "mkrgsm1400", "--port", "/dev/ttyACM0"])
    assert r.exit_code == 0, r.output
    (call,) = _calls(log)
    assert call[:-1] == ["--port=/dev/ttyACM0", "-U", "-i", "-e", "-w", "--offset=0x2000",
                         "-R"]
    assert Path(call[-1]).read_bytes() == image.bin.read_bytes()
