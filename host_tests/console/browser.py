"""Headless Debian chromium driven by Playwright, for the console's browser tests and its
screenshots. Never a downloaded browser: ``executable_path`` is the system chromium and
``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD`` is set (``./run test`` installs Debian's package)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (Playwright ``Browser``)."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    assert path is not None, "chromium is not installed"
    # as root (containers, CI) chromium's own sandbox cannot start
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()
