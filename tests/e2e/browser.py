"""What the browser tests share: Debian's Chromium driven by Playwright (never a browser Playwright downloads),
the marker that skips them without it, and a watch on the page's console."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

CHROMIUM = Path(os.environ.get("LOGREG_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--no-first-run",
]
#: The marks of a browser test module: end to end, slow, skipped where there is no Chromium.
BROWSER_TEST = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: install Debian's `chromium` package (.ci/run does) to run the browser test",
    ),
]

_RESOURCE_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")


@contextmanager
def chromium(artifacts: Path) -> Iterator[Browser]:
    """A headless Chromium for a module's tests; ``artifacts`` is made for their screenshots."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class ConsoleWatch:
    """Console errors and uncaught page errors; HTTP errors the test provokes on purpose are allowed by name."""

    errors: list[str] = field(default_factory=list)
    allowed: set[tuple[int, str]] = field(default_factory=set)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught page error: {exc}"))

    def allow_http_error(self, status: int, path: str) -> None:
        """Chromium logs every 4xx answer to fetch() as a console error; allow one the test asks for."""
        self.allowed.add((status, path))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        url = message.location.get("url", "") if message.location else ""
        found = _RESOURCE_ERROR.search(message.text)
        if found and (int(found.group(1)), httpx.URL(url).path) in self.allowed:
            return
        self.errors.append(f"console error: {message.text} (at {url})")
