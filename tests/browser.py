"""Playwright driving Debian's Chromium (/usr/bin/chromium), for tests marked `@pytest.mark.browser`.

Never `playwright install`: the browser is the distribution's. Each test gets a fresh context (cookies,
storage) in a browser launched once per test module with a fresh user-data directory. `screenshot(page,
name)` saves a full-page PNG under artifacts/screenshots/ (gitignored) as the test's artifact.
Import the fixtures into a conftest.py: `from tests.browser import browser, page`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    """A persistent Chromium context (a persistent context is how Playwright takes a user-data-dir).

    Module-scoped: Playwright's sync API keeps an event loop running in the main thread while it is
    open, which would stop later async tests from running on pytest-asyncio's loop."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    profile = tempfile.mkdtemp(prefix="kyufu-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            locale="ja-JP",
            viewport={"width": 390, "height": 844},  # a phone
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser):
    """A new page with no cookies from earlier tests; JS errors fail the test."""
    browser.clear_cookies()
    p = browser.new_page()
    p.set_default_timeout(10_000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    p.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def in_thread(coro):
    """asyncio.run in a thread: Playwright's sync API keeps its own loop running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_with_connection(coro_fn, settings):
    """`await coro_fn(conn)` on a fresh app-role connection, from a browser test's thread."""

    async def main():
        conn = await asyncpg.connect(settings.database_url)
        try:
            return await coro_fn(conn)
        finally:
            await conn.close()

    return in_thread(main())
