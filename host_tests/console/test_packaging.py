"""The console's templates and static files ship in the wheel: pyproject.toml's package-data
patterns match every one of them (host_tests/packaging builds the wheel itself; this is the
quick check that a new template is not left out)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "tools" / "ztp" / "service" / "_console"


def test_package_data_covers_templates_and_static_files() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["ztp.service._console"]
    shipped = {p for pattern in patterns for p in PACKAGE.glob(pattern)}
    files = {p for sub in ("templates", "static") for p in (PACKAGE / sub).iterdir()
             if p.is_file()}
    assert files and files <= shipped, sorted(str(p) for p in files - shipped)
