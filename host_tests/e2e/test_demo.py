"""`ztp demo` itself: no TTY, exit codes, twice on one data directory, and the APDU names of
its transcript."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from rich.console import Console
from ztp.demo import DEMO_CONFIG, DEMO_DEVICE_ID, DEMO_ICCID, ApduDecoder
from ztp.demo._decode import payload_kind
from ztp.demo.cli import run_demo
from ztp.iccid import build_ef_iccid
from ztp.sim import CardState

pytestmark = pytest.mark.timeout(90)


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ztp", "demo", *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=80)


def test_demo_runs_without_a_tty_and_twice_on_one_data_dir(tmp_path: Path):
    data = tmp_path / "demo"
    first = _demo("--data-dir", str(data), "--no-rerun")
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for text in ("MANAGE CHANNEL: open -> channel 1", "SELECT SAFE2", "SET DEVICEID",
                 "START CONFIG REQUEST", "FETCH -> OPEN CHANNEL: UDP", "FETCH -> OPEN CHANNEL: TCP",
                 "TLS ClientHello", "handshake_complete", "TLS 1.3 psk_ke, TLS_AES_128_CCM_SHA256",
                 "HTTP  GET /v1/config/", '"action": "iot:Alarm"', "configuration applied",
                 "demo OK"):
        assert text in out, text
    assert "\x1b[" not in out  # no colour codes without a terminal
    # one run: the device's report is stored on it, the service has none yet
    assert "DEVICE pending" in out and "reported:  nothing yet" in out
    assert (data / "device" / "report.json").exists()
    second = _demo("--data-dir", str(data), "-q", "--no-rerun")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "already known to the service" in second.stdout
    assert "configuration unchanged (already in force)" in second.stdout
    # the next run carried the first one's report: the service recorded it
    digest = f"crc32:{zlib.crc32(DEMO_CONFIG.encode()):08x}"
    assert "DEVICE in_sync" in second.stdout
    assert (f"reported:  outcome applied, code 0, version 2021-05-31, digest {digest}"
            in second.stdout)


def test_demo_rerun_sends_the_report_and_shows_the_device_in_sync(tmp_path: Path):
    r = _demo("--data-dir", str(tmp_path / "demo"), "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    digest = f"crc32:{zlib.crc32(DEMO_CONFIG.encode()):08x}"
    assert "re-run: the SIM fetched the same configuration" in r.stdout
    assert "DEVICE in_sync" in r.stdout
    assert f"delivered: digest {digest}" in r.stdout
    assert (f"reported:  outcome applied, code 0, version 2021-05-31, digest {digest}"
            in r.stdout)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_demo_transcript_summary_and_colour_on_a_forced_terminal(tmp_path: Path):
    data = tmp_path / "demo"
    buf = io.StringIO()
    con = Console(file=buf, force_terminal=True, color_system="standard", highlight=False,
                  soft_wrap=True, width=200)
    code = run_demo(data, console=con, rerun=False)
    raw = buf.getvalue()
    assert code == 0, raw
    # colour on a terminal: styled lines (AT lines cyan, the verdict bold green)
    assert "\x1b[" in raw
    assert "\x1b[1;32mdemo OK in " in raw
    assert re.search(r"\x1b\[36m>\s+\x1b\[0m\x1b\[36mAT\+CSIM=", raw), raw[:2000]
    out = _ANSI.sub("", raw)
    lines = out.splitlines()
    # the PSK identity is the SIM's EF_ICCID (its 10 bytes, as the card holds them)
    ef_iccid = CardState.load(data / "sim.json").ef_iccid
    assert ef_iccid == build_ef_iccid(DEMO_ICCID) and len(ef_iccid) == 10
    identity = ef_iccid.hex()
    [tls] = [ln for ln in lines if ln.startswith("        TLS   ")]
    m = re.fullmatch(r" {8}TLS   TLS 1\.3 psk_ke, TLS_AES_128_CCM_SHA256, PSK identity "
                     r"([0-9a-f]+), (\d+) bytes sent / (\d+) received \(127\.0\.0\.1:\d+\)",
                     tls)
    assert m, tls
    assert m.group(1) == identity
    assert int(m.group(2)) > 0 and int(m.group(3)) > 0
    [http] = [ln for ln in lines if ln.startswith("        HTTP  ")]
    assert http == (f"        HTTP  GET /v1/config/{DEMO_DEVICE_ID.hex()}?iccid={identity} "
                    f"-> 200")
    # the configuration now in force, printed and on the device's flash
    i = lines.index("        config in force on the device (config.json):")
    pretty = json.dumps(json.loads(DEMO_CONFIG), indent=2).splitlines()
    assert lines[i + 1:i + 1 + len(pretty)] == ["          " + ln for ln in pretty]
    assert (data / "device" / "config.json").read_bytes() == DEMO_CONFIG.encode()
    assert "result: configuration applied in " in out


def test_demo_fails_clearly_when_a_part_cannot_start(tmp_path: Path):
    data = tmp_path / "demo"
    data.mkdir()
    (data / "credentials.json").write_text("{}")  # malformed: the service cannot log in
    r = _demo("--data-dir", str(data), "-q")
    assert r.returncode != 0
    assert "demo FAILED" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


AID = "F0706F646773616665320101"


@pytest.mark.parametrize(("command", "response", "name", "detail"), [
    ("0070000001", "019000", "MANAGE CHANNEL", "open -> channel 1"),
    ("0070800100", "9000", "MANAGE CHANNEL", "close channel 1"),
    ("01A4040C0C" + AID, "9000", "SELECT SAFE2", f"channel 1, AID {AID}"),
    ("01DA02C0020A0B", "9000", "SET DEVICEID", "channel 1, 0a0b"),
    ("01DA02C1020A0B", "9000", "SEND TELEMETRY", "channel 1, 2 bytes"),
    ("01CA000000", "9113", "START CONFIG REQUEST", "channel 1: the SIM fetches the configuration"),
    ("01CA010000", "615A", "READ CONFIG", "channel 1"),
    ("01CC020000", "6104", "GET STATUS", "channel 1"),
    ("4011223344", "6D00", "INS 11", "40 11 22 33 44"),
    ("01", "", "MALFORMED APDU", "01"),
])
def test_apdu_names(command, response, name, detail):
    s = ApduDecoder().describe(bytes.fromhex(command), bytes.fromhex(response))
    assert (s.name, s.detail) == (name, detail)


def test_get_response_is_named_after_the_command_it_answers():
    d = ApduDecoder()
    d.describe(bytes.fromhex("01CC020000"), bytes.fromhex("6104"))
    s = d.describe(bytes.fromhex("01C0000004"), bytes.fromhex("000F01949000"))
    assert s.detail == "status 000F (error), result 0194"
    assert (s.sw, s.sw_text) == (0x9000, "OK")
    d.describe(bytes.fromhex("01CA010000"), bytes.fromhex("6103"))
    s = d.describe(bytes.fromhex("01C0000003"), bytes.fromhex("7B7D0A9000"))
    assert s.detail == "configuration body, 3 bytes"


def test_toolkit_apdus_and_garbage_never_raise():
    d = ApduDecoder()
    s = d.describe(bytes.fromhex("801200000B"), bytes.fromhex("D009810301410082028121" "9000"))
    assert (s.name, s.toolkit) == ("FETCH -> CLOSE CHANNEL", True)
    s = d.describe(bytes.fromhex("8012000003"), bytes.fromhex("D001FF9000"))
    assert s.name == "FETCH -> PROACTIVE COMMAND" and s.detail.startswith("undecodable")
    s = d.describe(bytes.fromhex("80C2000002FFFF"), bytes.fromhex("9000"))
    assert s.name == "ENVELOPE" and s.detail.startswith("undecodable")
    assert payload_kind(bytes.fromhex("1603010005" "01000001")) == "TLS ClientHello"
    assert payload_kind(b"") == "data"
