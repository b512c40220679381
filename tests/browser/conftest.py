"""Fixtures of the browser tests: Debian's chromium driven by Playwright (async, in the test
session's event loop) against the real API served by uvicorn, the real ingest worker and
MQTT broker (`worker`, `gateway` from tests/conftest.py) and PostgreSQL.

- `browser`: chromium, launched once per test session (RPM_TEST_CHROMIUM or /usr/bin/chromium;
  without one the tests fail, they never skip).
- `site`: the staff page and API on a free port, sessions committing; `harness.serve` for a variant.
- `page`: a fresh browser context per test at 1280x900, nb-NO, Europe/Oslo, whose base URL is
  the site; a JavaScript error on it fails the test.
- `organisation`: a new organisation, so the worklist holds exactly this test's patients.
- `sign_in`, `screenshot`: the development sign-in form; a full-page PNG in docs/screenshots/.

Waits are Playwright's auto-waiting and `expect` with explicit timeouts, never fixed sleeps.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rpm.config import Settings
from tests.browser import harness
from tests.browser.harness import Site

# Playwright's default for every `expect`; a test that promises a time (two seconds) says so.
expect.set_options(timeout=5_000)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with a stream that notices a closed connection within a second."""
    return settings.model_copy(update={"sse_heartbeat_seconds": 1.0})


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = harness.chromium_executable()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=harness.CHROMIUM_ARGS, env={**os.environ, **harness.CHROMIUM_ENV}
        )
        yield browser
        await browser.close()


@pytest.fixture
async def site(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Site]:
    async with harness.serve(settings, engine) as served:
        yield served


@pytest.fixture
async def page(browser: Browser, site: Site) -> AsyncIterator[Page]:
    tab = await harness.open_tab(browser, site.url)
    yield tab.page
    await tab.context.close()
    assert not tab.errors, f"JavaScript errors on the page: {tab.errors}"


@pytest.fixture
async def organisation(committed: async_sessionmaker[AsyncSession]) -> str:
    return await harness.add_organisation(committed)


@pytest.fixture
def sign_in() -> Callable[..., Awaitable[None]]:
    return harness.sign_in


@pytest.fixture
def screenshot() -> Callable[[Page, str], Awaitable[Path]]:
    return harness.screenshot
