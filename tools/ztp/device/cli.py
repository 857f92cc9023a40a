"""click commands: `ztp device`, `ztp build`, `ztp flash`, `ztp firmware-check`, and the
fallback `ztp demo` (firmware against the scripted fake modem)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ztp.device._mpy import FIRMWARE, FIRMWARE_FILES, TESTS, FirmwareCheckError

if TYPE_CHECKING:
    from ztp.firmware import Budget


def _fmt_line(direction: str, line: bytes) -> str:
    return f"{direction} {bytes(line).decode('ascii', 'replace')}"


@click.command("device")
@click.option("--port", required=True, help="pyserial port or URL (/dev/pts/N, socket://h:p)")
@click.option("--baud", default=115200, show_default=True)
@click.option("--device-id", "device_id_hex", default="000102030405060708090a0b0c0d0e0f",
              show_default=True, help="DeviceID override, hex (the MKR sends its 16-byte id)")
@click.option("--config-dir", type=click.Path(path_type=Path), default=None,
              help="where the applied configuration is kept (default: a temp dir)")
@click.option("--poll-deadline", "poll_deadline_s", default=120.0, show_default=True,
              help="seconds to wait for the SIM to finish the request")
@click.option("--transcript", is_flag=True, help="print every AT line sent and received")
@click.option("--reports", is_flag=True,
              help="as the board: keep the configuration report in --config-dir and send it "
                   "to the service before the next fetch (docs/device-report.md)")
def device_cmd(port: str, baud: int, device_id_hex: str, config_dir: Path | None,
               poll_deadline_s: float, transcript: bool, reports: bool) -> None:
    """Run one provisioning with the firmware's lib/ through a serial port."""
    import serial

    from ztp.device._host import SerialUart, run_provisioning

    try:
        device_id = bytes.fromhex(device_id_hex)
    except ValueError as e:
        raise click.BadParameter("not hex", param_hint="--device-id") from e
    if not 1 <= len(device_id) <= 255:
        raise click.BadParameter("1-255 bytes", param_hint="--device-id")
    tmp = None
    if config_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="ztp-device-")
        config_dir = Path(tmp.name)
    try:
        ser = serial.serial_for_url(port, baudrate=baud, timeout=0.02)
    except (serial.SerialException, ValueError) as e:
        raise click.ClickException(f"cannot open {port}: {e}") from e
    hook = (lambda d, line: click.echo(_fmt_line(d, line))) if transcript else None
    try:
        code, detail = run_provisioning(SerialUart(ser), device_id, config_dir,
                                        poll_deadline_ms=int(poll_deadline_s * 1000),
                                        log=lambda m: click.echo(f"ztp: {m}", err=True),
                                        at_hook=hook, reports=reports)
    except (serial.SerialException, OSError) as e:
        # the port went away mid-run (USB unplugged, TCP peer closed): a modem failure
        code, detail = 10, f"lost the modem port {port}: {e}"
    finally:
        ser.close()
        if tmp is not None:
            tmp.cleanup()
    if code in (0, 1):
        click.echo(f"provisioning: {'applied' if code == 0 else 'unchanged'}")
        return
    click.echo(f"provisioning failed ({code}): {detail}", err=True)
    sys.exit(code)


@click.command("build")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="output directory  [default: build/mpy; with --image, build/image]")
@click.option("--march", default="armv6m", show_default=True, help="SAMD21 = armv6m")
@click.option("--opt", type=click.IntRange(0, 3), default=3, show_default=True,
              help="mpy-cross -O: 3 as the frozen build (no line numbers), 0 keeps line "
                   "numbers for tracebacks (about 1.7 KB more)")
@click.option("--image", is_flag=True,
              help="build the MKR GSM 1400 firmware image (MicroPython with lib/ frozen) "
                   "instead of .mpy files: firmware.elf/.bin/.uf2 and its flash/RAM budget")
@click.option("--micropython-src", "mp_src", type=click.Path(path_type=Path, file_okay=False),
              default=None, help="with --image: the MicroPython v1.28.0 tree [default: "
                                 "$ZTP_MICROPYTHON_SRC, the vendored tarball, else a git clone]")
@click.option("--codesize", default=None,
              help="with --image: MICROPY_HW_CODESIZE, e.g. 208K [default: the board's]")
def build_cmd(out_dir: Path | None, march: str, opt: int, image: bool, mp_src: Path | None,
              codesize: str | None) -> None:
    """Compile lib/ with mpy-cross into .mpy files for a board, or (--image) build the MKR
    GSM 1400 firmware image with lib/ frozen into it."""
    if image:
        _build_image(out_dir or Path("build/image"), mp_src, codesize)
        return
    if mp_src is not None or codesize is not None:
        raise click.UsageError("--micropython-src and --codesize go with --image")
    from ztp.device._mpy import build

    out_dir = out_dir or Path("build/mpy")
    try:
        files = build(out_dir, march, opt)
    except FirmwareCheckError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{len(files)} modules -> {out_dir}")


def budget_rows(budget: Budget) -> list[tuple[str, str, str]]:
    """The budget table of `ztp build --image`: (what, bytes, note) rows."""
    b = budget
    return [
        ("code", f"{b.code_used:,} / {b.code_size:,}",
         f"{100 * b.code_used / b.code_size:.1f}% of the code region, "
         f"{b.code_size - b.code_used:,} free"),
        ("frozen", f"{b.frozen:,}", "lib/*.py + _boot.py, inside code"),
        ("ROMFS", f"{b.romfs:,}", ""),
        ("file system", f"{b.fs:,}", "littlefs on the internal flash"),
        ("static RAM", f"{b.static_ram:,}", ".data + .bss"),
        ("GC heap", f"{b.gc_heap:,}", "_sstack - _ebss"),
    ]


def _build_image(out_dir: Path, mp_src: Path | None, codesize: str | None) -> None:
    from ztp.firmware import BOARD, ImageError, SourceError, build_image

    click.echo(f"building {BOARD} (samd port, lib/ frozen; about 30 s unless cached)...",
               err=True)
    try:
        img = build_image(mp_src, out_dir, codesize)
    except (ImageError, SourceError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{BOARD} image, code region {img.codesize}"
               f"{' (from the cache)' if img.cached else ''} -> {out_dir}")
    click.echo(f"  {img.bin.name}  for the MKR's SAM-BA bootloader: "
               f"ztp flash --image {img.bin} --port PORT")
    click.echo(f"  {img.uf2.name}  only for boards with a UF2 bootloader (not the MKR)")
    click.echo(f"  {img.elf.name}  with symbols (debugger, budget); {img.map.name} the link map")
    rows = budget_rows(img.budget)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for what, n, note in rows:
        click.echo(f"  {what:<{w0}}  {n:>{w1}} B  {note}".rstrip())


# run on the board before the copy: /lib made if missing (mpremote's `mkdir` fails when it
# exists), and the other kind of module removed (MicroPython imports x.py before x.mpy, so a
# source left from an earlier flash would shadow a new .mpy)
_FLASH_PREP = ("import os\n"
               "try:\n os.mkdir('/lib')\nexcept OSError:\n pass\n"
               "for f in os.listdir('/lib'):\n"
               " if f.endswith('{stale}'):\n  os.remove('/lib/'+f)\n")


def flash_commands(port: str, lib_dir: Path, mpy: bool) -> list[str]:
    """The mpremote command line of `ztp flash`: idempotent (no `mkdir` that fails when
    :/lib exists) and only the modules themselves (no __pycache__ or other stray files)."""
    ext = ".mpy" if mpy else ".py"
    files = sorted(str(p) for p in lib_dir.iterdir() if p.is_file() and p.suffix == ext)
    if not files:
        raise click.ClickException(f"no {ext} modules in {lib_dir}")
    prep = _FLASH_PREP.format(stale=".py" if mpy else ".mpy")
    return [sys.executable, "-m", "mpremote", "connect", port, "exec", prep, "+",
            "cp", *files, ":/lib/", "+",
            "cp", str(FIRMWARE / "boot.py"), str(FIRMWARE / "main.py"), ":"]


@click.command("flash")
@click.option("--port", default="auto", show_default=True,
              help="mpremote connect target; with --image/--board the bootloader's serial port")
@click.option("--mpy", is_flag=True, help="copy the .mpy build instead of the sources")
@click.option("--image", "image", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              default=None, help="write this firmware.bin with bossac (MKR GSM 1400: SAM-BA "
                                 "bootloader, offset 0x2000) instead of copying files")
@click.option("--board", type=click.Choice(["mkrgsm1400"]), default=None,
              help="build (or take from the cache) this board's image and write it with bossac")
def flash_cmd(port: str, mpy: bool, image: Path | None, board: str | None) -> None:
    """Copy boot.py, main.py and lib/ to a board with mpremote (boards with room; safe to
    repeat), or write the MKR GSM 1400 image (lib/ frozen) with bossac: --image FILE.bin or
    --board mkrgsm1400. See firmware/README.md."""
    if image is not None or board is not None:
        _flash_image(port, image, mpy)
        return
    from ztp.device._mpy import build

    with tempfile.TemporaryDirectory() as tmp:
        if mpy:
            build(Path(tmp) / "lib")
            lib_dir = Path(tmp) / "lib"
        else:
            lib_dir = FIRMWARE / "lib"
        r = subprocess.run(flash_commands(port, lib_dir, mpy))
    if r.returncode:
        raise click.ClickException(f"mpremote failed ({r.returncode})")


def _flash_image(port: str, image: Path | None, mpy: bool) -> None:
    from ztp.firmware import DOUBLE_TAP, FlashError, bossac_command

    if mpy:
        raise click.UsageError("--mpy copies files; the image has lib/ frozen in it")
    if port == "auto":
        raise click.UsageError("give --port: the bootloader's serial port (e.g. /dev/ttyACM0)")
    if image is None:
        from ztp.firmware import ImageError, SourceError, build_image

        try:
            image = build_image().bin
        except (ImageError, SourceError) as e:
            raise click.ClickException(str(e)) from e
    try:
        cmd = bossac_command(image, port)
    except FlashError as e:
        raise click.ClickException(str(e)) from e
    click.echo(DOUBLE_TAP)
    click.echo("$ " + " ".join(cmd))
    r = subprocess.run(cmd)
    if r.returncode:
        raise click.ClickException(
            f"bossac failed ({r.returncode}): is the board in its bootloader (double-tap "
            f"RESET) and {port} its port?")
    click.echo("flashed; the file system was erased with the old image: copy main.py (and "
               "boot.py) with `mpremote connect PORT cp main.py boot.py :`")


@click.command("firmware-check")
@click.option("--skip-micropython", is_flag=True)
def firmware_check_cmd(skip_micropython: bool) -> None:
    """mpy-cross every firmware file (also -march=armv6m), the SAMD21 feature check, and the
    firmware tests + one provisioning's heap use under the MicroPython WASI runtime."""
    from ztp.device import _features, _mpy

    with tempfile.TemporaryDirectory() as tmp:
        for f in FIRMWARE_FILES:
            for march in (None, "armv6m"):
                try:
                    _mpy.mpy_cross(f, Path(tmp) / f"{f.stem}-{march}.mpy", march)
                except FirmwareCheckError as e:
                    raise click.ClickException(str(e)) from e
    click.echo(f"mpy-cross: {len(FIRMWARE_FILES)} files compiled (bytecode and armv6m)")
    problems = _features.check_files(FIRMWARE_FILES)
    if problems:
        raise click.ClickException("SAMD21 feature check:\n" + "\n".join(problems))
    click.echo("SAMD21 feature check: ok")
    if skip_micropython:
        return
    try:
        r = _mpy.run_tests()
        for line in r.stdout.splitlines():
            if line.startswith("FAIL") or line.startswith("micropython:"):
                click.echo(line)
        if r.failed or not r.passed:
            raise click.ClickException("firmware tests failed under MicroPython")
        h = _mpy.measure_heap()
    except FirmwareCheckError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"WASI allocations, one provisioning with gc off (secondary: the board's heap "
               f"is the heap run's, `ztp bench firmware`): firmware allocated "
               f"{h.firmware_alloc_bytes} bytes (test doubles' {h.fake_alloc_bytes} bytes "
               f"excluded), {h.live_after_bytes} bytes live after")


@click.command("device-demo")
@click.option("--quiet", is_flag=True)
def demo_cmd(quiet: bool) -> None:
    """Run the firmware against the scripted fake modem + SIM and print the transcript."""
    from ztp.device._host import load_firmware

    load_firmware()
    tests = TESTS
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import apply
    import fw_fakes
    import modem
    import provision

    clock, sim, m, fs = fw_fakes.make_rig(done_after_ms=2500)
    m.urc_in_csim = True

    def at_line(d: str, line: bytes) -> None:
        if not quiet:
            click.secho(f"  [{clock.now / 1000:7.3f}s] {_fmt_line(d, line)}",
                        fg="cyan" if d == ">" else "green")

    def log(msg: str) -> None:
        if not quiet:
            click.secho(f"  [{clock.now / 1000:7.3f}s] ztp: {msg}", fg="yellow")

    applier = apply.Applier(fs, "/ztp", log)
    pin = fw_fakes.FakePin()
    applier.register("iot:Alarm", apply.PinHandler(pin))
    link = modem.Link(m, clock, at_hook=at_line)
    p = provision.Provisioner(link, fs, applier, bytes(range(16)), "/ztp/channel",
                              provision.Options(), fw_fakes.rng, log)
    click.echo("firmware (lib/) against the scripted fake SARA modem + SAFE2 SIM "
               "(virtual clock)")
    code = p.run()
    click.echo(f"result: {provision.result_name(code)}; alarm pin = {pin.v}; "
               f"config.json = {fs.files.get('/ztp/config.json', b'').decode()}")
    if code not in (0, 1):
        sys.exit(code)
