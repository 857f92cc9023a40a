"""Where the MicroPython v1.28.0 source tree comes from, and where build outputs are cached.

The tree, in order: an explicit directory (`--micropython-src`), `$ZTP_MICROPYTHON_SRC`, the
vendored tarball `../shared/vendor/micropython-1.28.0-ztp.tar.xz` beside this repository
(a checkout only; an installed wheel has no such neighbour)
(extracted once into the cache, keyed by the tarball's sha256), else a shallow git clone of
the pinned tag with the submodules a samd image needs.

Build outputs live under the cache root (`$ZTP_CACHE`, else `$XDG_CACHE_HOME/ztp`, else
`~/.cache/ztp`), never inside the clone, in directories keyed by a hash of every input
(`inputs_key`), so CI rebuilds only when the firmware's sources change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ztp.firmware._tree import checkout_root, firmware_root

FIRMWARE = firmware_root()  # boot.py, main.py, lib/, firmware/ (repository or packaged copy)
MICROPYTHON_TAG = "v1.28.0"
MICROPYTHON_GIT = "https://github.com/micropython/micropython"
_CHECKOUT = checkout_root()
VENDOR_TARBALL = (_CHECKOUT.parent / "shared" / "vendor" / "micropython-1.28.0-ztp.tar.xz"
                  if _CHECKOUT is not None else None)


class SourceError(Exception):
    """No usable MicroPython source tree (or toolchain) could be found or made."""


def cache_root() -> Path:
    env = os.environ.get("ZTP_CACHE")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ztp"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inputs_key(*items: Path | str) -> str:
    """A short hash of every input: files (path relative name + bytes), directories (each
    file below them, sorted, `__pycache__` and `build*` skipped) and plain strings (flags,
    the source tree's identity)."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, str):
            h.update(b"S" + item.encode() + b"\0")
            continue
        p = Path(item)
        files = [p] if p.is_file() else sorted(
            f for f in p.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts
            and not any(part.startswith("build") for part in f.relative_to(p).parts))
        for f in files:
            h.update(b"F" + (f.name if f == p else str(f.relative_to(p))).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def tree_identity(tree: Path) -> str:
    """What identifies a source tree in cache keys: its stamp (tarball sha or git tag) when
    we made it, else its resolved path."""
    stamp = tree / ".ztp-source"
    if stamp.exists():
        return stamp.read_text().strip()
    return str(tree.resolve())


def _check_tree(tree: Path) -> Path:
    if not (tree / "py" / "mkrules.mk").exists() or not (tree / "ports" / "samd").is_dir():
        raise SourceError(f"{tree}: not a MicroPython source tree (no py/mkrules.mk or "
                          "ports/samd)")
    return tree


def _extract_tarball(tarball: Path) -> Path:
    sha = _sha256_file(tarball)
    dest = cache_root() / f"micropython-src-{sha[:16]}"
    tree = dest / "micropython-1.28.0"
    if (tree / ".ztp-source").exists():
        return tree
    tmp = Path(tempfile.mkdtemp(prefix="mpsrc-", dir=cache_root()))
    try:
        with tarfile.open(tarball) as tf:
            tf.extractall(tmp, filter="tar")
        (tmp / "micropython-1.28.0" / ".ztp-source").write_text(f"tarball-sha256:{sha}\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _check_tree(tree)


def _git_clone() -> Path:
    dest = cache_root() / f"micropython-git-{MICROPYTHON_TAG}"
    tree = dest / "micropython"
    if (tree / ".ztp-source").exists():
        return tree
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        subprocess.run(["git", "clone", "--depth", "1", "--branch", MICROPYTHON_TAG,
                        MICROPYTHON_GIT, str(tree)], check=True)
        subprocess.run(["make", "-C", "ports/samd", "BOARD=SAMD_GENERIC_D21X18", "submodules"],
                       cwd=tree, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        shutil.rmtree(dest, ignore_errors=True)
        raise SourceError(f"no MicroPython source: git clone of {MICROPYTHON_TAG} failed "
                          f"({e}); give --micropython-src DIR or $ZTP_MICROPYTHON_SRC") from e
    (tree / ".ztp-source").write_text(f"git:{MICROPYTHON_TAG}\n")
    return _check_tree(tree)


def micropython_tree(src: Path | None = None) -> Path:
    """The MicroPython source tree to build from (see the module docstring for the order)."""
    if src is not None:
        return _check_tree(Path(src).resolve())
    env = os.environ.get("ZTP_MICROPYTHON_SRC")
    if env:
        return _check_tree(Path(env).resolve())
    if VENDOR_TARBALL is not None and VENDOR_TARBALL.exists():
        return _extract_tarball(VENDOR_TARBALL)
    return _git_clone()


def jobs() -> str:
    return str(max(1, os.cpu_count() or 1))


@contextmanager
def locked(name: str) -> Iterator[None]:
    """An exclusive lock under the cache root, so parallel builds of the same thing (the
    image, the heap run's unix build, a tree's mpy-cross) wait for the first instead of
    building it twice in the same place."""
    locks = cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with (locks / f"{name}.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def mpy_cross(tree: Path) -> Path:
    """The tree's own mpy-cross (frozen bytecode must match its VM), built once in place."""
    exe = tree / "mpy-cross" / "build" / "mpy-cross"
    with locked("mpy-cross-" + hashlib.sha256(str(tree).encode()).hexdigest()[:16]):
        if not exe.exists():
            r = subprocess.run(["make", "-C", str(tree / "mpy-cross"), f"-j{jobs()}"],
                               capture_output=True, text=True)
            if r.returncode != 0 or not exe.exists():
                tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
                raise SourceError(f"building mpy-cross in {tree} failed:\n{tail}")
    return exe
