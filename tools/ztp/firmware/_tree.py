"""Where the firmware tree is: boot.py, main.py, lib/ and firmware/ (manifest, board, host).

From a checkout (editable install, tests, `./run`) that is the repository itself. An installed
wheel carries a copy of the same files as package data in `ztp/_firmware/` (setup.py's
build_py copies them there at build time; MANIFEST.in puts them in the sdist). The packaged
copy wins when it exists, so a wheel never reads a stray checkout; an editable install has
none and reads the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parents[1] / "_firmware"
_CHECKOUT = Path(__file__).resolve().parents[3]  # tools/ztp/firmware/_tree.py -> repository


def _is_tree(root: Path) -> bool:
    return (root / "main.py").is_file() and (root / "firmware" / "manifest.py").is_file()


def checkout_root() -> Path | None:
    """The repository this package runs from, or None when it runs from an installed wheel.
    Only a checkout has host_tests/ and the vendored MicroPython tarball beside it."""
    if _is_tree(_CHECKOUT) and (_CHECKOUT / "tools" / "ztp").is_dir():
        return _CHECKOUT
    return None


def firmware_root() -> Path:
    """The directory holding boot.py, main.py, lib/ and firmware/.

    Returns:
        the packaged copy (`ztp/_firmware`) in an installed wheel, else the repository.

    Raises:
        FileNotFoundError: neither exists (a broken install: reinstall the package).
    """
    if _is_tree(_PACKAGED):
        return _PACKAGED
    root = checkout_root()
    if root is None:
        raise FileNotFoundError(f"no firmware tree: {_PACKAGED} is missing and this package "
                                "does not run from a checkout; reinstall ztp")
    return root
