"""pytest setup for the firmware tests: lib/ and the test doubles on sys.path, plus a
`micropython` stub (const) so the firmware modules import on CPython."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (ROOT / "lib", HERE, HERE / "stub"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
