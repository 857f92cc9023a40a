"""Copy the firmware tree into the wheel as package data (ztp/_firmware).

boot.py, main.py, lib/*.py and firmware/ (manifest.py, boards/, host/) live at the repository
root, outside tools/ where the ztp package is; `ztp build`, `ztp demo` and the image and heap
builds need them. build_py copies them into the build as `ztp/_firmware/...`, so a regular
(non-editable) install has them; ztp.firmware.firmware_root() finds either that copy or, for
an editable install, the repository. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
FIRMWARE_FILES = ["boot.py", "main.py", "lib/*.py", "firmware/manifest.py",
                  "firmware/boards/**/*", "firmware/host/**/*"]


def firmware_files() -> list[Path]:
    out = set()
    for pattern in FIRMWARE_FILES:
        out.update(p for p in ROOT.glob(pattern)
                   if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return sorted(out)


class BuildPyWithFirmware(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository itself
        dest = Path(self.build_lib) / "ztp" / "_firmware"
        files = firmware_files()
        if not any(p.name == "main.py" and p.parent == ROOT for p in files):
            raise SystemExit("setup.py: no main.py/lib/firmware to package (incomplete sdist?)")
        for src in files:
            out = dest / src.relative_to(ROOT)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)


setup(cmdclass={"build_py": BuildPyWithFirmware})
