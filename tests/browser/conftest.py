"""Headless Chromium (Debian's, never a downloaded one) driven by Playwright against a live server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

CHROMIUM = os.environ.get("CUSTODIA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt: chromium; make test installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; Django's ORM calls from the test itself
    # are synchronous and safe here.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, committing_db, live_server):
    # Playwright's wait_for_function("expression") evaluates a string, which the Content-Security-Policy
    # forbids; the policy itself is tested in a context of its own (tests/browser/test_csp.py).
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, *, color_scheme: str = "light") -> None:
    """Save a screenshot when CUSTODIA_SCREENSHOT_DIR is set (`make screenshots` uses it for the README).

    The README shows the light pages, 1280 px wide (the viewport); ``color_scheme="dark"`` shows dark mode
    (``prefers-color-scheme``), and the page stays in it until the next light screenshot."""
    folder = os.environ.get("CUSTODIA_SCREENSHOT_DIR")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.emulate_media(color_scheme=color_scheme)
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=False)
