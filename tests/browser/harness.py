"""The browser tests' tools: Debian's chromium, the served app, test data, signing in, screenshots.

The fixtures in tests/browser/conftest.py are built from these; a test that needs a variant
(another setting, a second browser, a second server) calls them directly.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rpm.access.staff import Role
from rpm.api.app import create_app
from rpm.config import Settings
from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember, Patient
from tests.fixtures.mqtt import Gateway
from tests.fixtures.servers import free_port
from tests.fixtures.world import add_patient_with_devices

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Debian's chromium in a container: no sandbox (no user namespaces), no GPU, nothing that
# calls home while the tests run.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--lang=nb-NO",
]
# Norwegian in the browser's own widgets too (date fields read 25.06.1999), as at a Norwegian
# nurse's desk; Debian's chromium-l10n has the texts.
CHROMIUM_ENV = {"LANG": "nb_NO.UTF-8", "LANGUAGE": "nb"}
# A laptop; the tablet width (768) is a page's own test where it matters.
VIEWPORT = {"width": 1280, "height": 900}
LOCALE = "nb-NO"
TIMEZONE = "Europe/Oslo"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SCREENSHOT_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def chromium_executable() -> str:
    """RPM_TEST_CHROMIUM, else Debian's /usr/bin/chromium. Missing, the tests fail: they never skip."""
    path = os.environ.get("RPM_TEST_CHROMIUM") or DEFAULT_CHROMIUM
    if not Path(path).is_file():
        pytest.fail(
            f"no chromium at {path}: install Debian's (apt-get install chromium; scripts/services does it "
            "when run as root) or point RPM_TEST_CHROMIUM at a chromium binary",
            pytrace=False,
        )
    return path


# -- the served app ------------------------------------------------------------------------


@dataclass
class Site:
    """The staff page and API served by uvicorn: `url`, the `app` (for its state), and `http`,
    a plain client of it that follows no redirects and keeps no cookies of its own."""

    url: str
    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient

    def client(self, **cookies: str) -> httpx.AsyncClient:
        """Another client of the site, as another browser would be: with only these cookies."""
        return httpx.AsyncClient(base_url=self.url, cookies=cookies, timeout=15)


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """An ASGI app served by uvicorn on a free port in this event loop; its base URL."""
    # Open event streams end when their browser goes; the grace period only bounds a stuck one.
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "the staff page's server did not start listening"
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@asynccontextmanager
async def serve(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Site]:
    """The app with these settings on a free port, its sessions committing (the worker and the
    browser see what it writes, and it sees theirs), with the alert stream's LISTEN connection."""
    app = create_app(settings, engine=engine)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        yield Site(url, app, settings, http)


@asynccontextmanager
async def asgi(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The app with these settings over ASGI, sessions committing: for a server-side check of a
    settings variant where no browser is needed."""
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rpm.test") as http:
            yield http


def end_streams(site: Site) -> None:
    """Ends every open event stream from the server's side, the way the server ends a stream
    that cannot keep up (within `sse_heartbeat_seconds`)."""
    for subscriber in list(site.app.state.hub.subscribers):
        subscriber.overflowed = True


# -- the browser ---------------------------------------------------------------------------

# Recorded in every page before its own scripts run: the live connection's opens and errors,
# so a test can wait until the stream is really open before it makes something happen.
PAGE_PROBE = """
window.__rpm = {streamOpened: 0, streamErrors: 0};
document.addEventListener("htmx:sseOpen", function () { window.__rpm.streamOpened += 1; });
document.addEventListener("htmx:sseError", function () { window.__rpm.streamErrors += 1; });
"""


@dataclass
class Tab:
    """A page in its own browser context, and the JavaScript errors it raised."""

    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)


async def open_tab(browser: Browser, base_url: str) -> Tab:
    """A fresh context (no cookies) at the laptop size, in Norwegian and Oslo time."""
    context = await browser.new_context(
        viewport=VIEWPORT, locale=LOCALE, timezone_id=TIMEZONE, base_url=base_url, color_scheme="light"
    )
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(15_000)
    await context.add_init_script(PAGE_PROBE)
    page = await context.new_page()
    tab = Tab(page, context)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    return tab


async def sign_in(
    page: Page,
    organisation: str,
    *roles: str,
    sub: str = "nurse-1",
    name: str | None = None,
    next: str = "/",
) -> None:
    """Through the development sign-in form, as a person would: organisation, roles, user id."""
    await page.goto(f"/login?{urlencode({'next': next})}")
    form = page.locator("form[action='/login/development']")
    await form.locator("select[name=organisation]").select_option(organisation)
    wanted = set(roles or ("nurse",))
    for role in Role:
        await form.locator(f"input[name=roles][value={role.value}]").set_checked(role.value in wanted)
    await form.locator("input[name=sub]").fill(sub)
    await form.locator("input[name=name]").fill(name or "")
    await form.locator("button[type=submit]").click()
    await page.wait_for_url(lambda url: httpx.URL(url).path == httpx.URL(next).path)


async def session_cookie(context: BrowserContext) -> dict[str, Any]:
    """The browser's session cookie, with its flags as the browser keeps them."""
    found = [c for c in await context.cookies() if c["name"] == "rpm_session"]
    assert len(found) == 1, f"one session cookie expected, the browser has {found}"
    return dict(found[0])


async def csrf_token(page: Page) -> str:
    """The session's CSRF token, as the page carries it for htmx (the body's hx-headers)."""
    token = await page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    assert isinstance(token, str) and token
    return token


async def stream_opened(page: Page, times: int = 1, timeout: float = 5_000) -> None:
    """Until the page's live connection has opened `times` times since the page loaded.

    Asked with `evaluate`, again and again until the deadline: `wait_for_function` evaluates its
    predicate from a string inside the page, which the page's Content-Security-Policy (no
    'unsafe-eval') refuses."""
    async with asyncio.timeout(timeout / 1000):
        while not await page.evaluate(f"window.__rpm.streamOpened >= {times}"):
            await asyncio.sleep(0.02)


async def mark_no_reload(page: Page) -> None:
    """Leaves a mark on the page's window that a reload or navigation would wipe."""
    await page.evaluate("window.__rpmStayed = true")


async def assert_no_reload(page: Page) -> None:
    assert await page.evaluate("window.__rpmStayed === true"), "the page was reloaded or navigated"


async def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG at docs/screenshots/<name>.png for the README, rewritten on every run."""
    assert SCREENSHOT_NAME.fullmatch(name), f"screenshot names are lower-case words with dashes: {name!r}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path


def row_of(page: Page, patient_id: uuid.UUID) -> Any:
    """The worklist row of a patient."""
    return page.locator(f"#rows tr[data-patient='{patient_id}']")


async def expect_level(page: Page, patient_id: uuid.UUID, level: str, word: str, timeout: float = 5_000) -> None:
    """The patient's row has the level's class and says its word (never colour alone)."""
    row = row_of(page, patient_id)
    await expect(row).to_have_class(re.compile(rf"(^|\s)row-{level}(\s|$)"), timeout=timeout)
    await expect(row.locator(".level")).to_contain_text(word, timeout=timeout)


# -- test data -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPatient:
    id: uuid.UUID
    name: str
    serials: dict[str, str]  # reading type -> the serial of the patient's device of that type

    __test__ = False  # not a test class, whatever its name


async def add_organisation(sessions: async_sessionmaker[AsyncSession], name: str = "Testkommune") -> str:
    """A registered organisation no other test uses (committed): its worklist is this test's alone."""
    async with sessions() as session, session.begin():
        while True:
            orgnr = f"{random.randint(100_000_000, 899_999_999)}"
            if await session.scalar(select(Organisation.id).where(Organisation.orgnr == orgnr)) is None:
                break
        session.add(Organisation(orgnr=orgnr, name=f"{name} {orgnr[-4:]}", kind="municipality"))
    return orgnr


async def add_patient(
    sessions: async_sessionmaker[AsyncSession],
    orgnr: str,
    name: str,
    *,
    conditions: Sequence[str] = (),
    devices: Sequence[str] = ("spo2",),
    plan: dict[str, int] | None = None,
    also_followed_by: Sequence[str] = (),
    enrolled_at: datetime | None = None,
) -> TestPatient:
    """A patient followed by `orgnr` (and `also_followed_by`), with one assigned device per
    reading type, committed so the worker and the served app see them; enrolled now, or
    `enrolled_at` (their plan counts from then)."""
    async with sessions() as session, session.begin():
        patient_id, enrolled = await add_patient_with_devices(
            session,
            orgnr,
            devices,
            conditions=conditions,
            plan=plan if plan is not None else dict.fromkeys(devices, 24),
            created_at=enrolled_at,
        )
        await session.execute(update(Patient).where(Patient.id == patient_id).values(name=name))
        for other in also_followed_by:
            organisation_id = await session.scalar(select(Organisation.id).where(Organisation.orgnr == other))
            assert organisation_id is not None, f"organisation {other} is not registered"
            session.add(
                CareTeamMember(patient_id=patient_id, organisation_id=organisation_id, period_from=date(2020, 1, 1))
            )
    return TestPatient(
        patient_id, name, {device_type: d.serial for device_type, d in zip(devices, enrolled, strict=True)}
    )


UNITS = {
    "spo2": "%",
    "heart-rate": "/min",
    "body-weight": "kg",
    "body-temperature": "Cel",
    "respiratory-rate": "/min",
    "blood-glucose": "mmol/L",
    "blood-pressure": "mm[Hg]",
}


def publish_reading(
    gateway: Gateway,
    patient: TestPatient,
    reading_type: str,
    value: float | dict[str, float],
    *,
    at: datetime | None = None,
    gateway_id: str = "hub-1",
) -> str:
    """One reading of the patient's device over MQTT, as its gateway sends it; its reading id."""
    reading_id = f"r-{uuid.uuid4().hex[:12]}"
    moment = at or datetime.now(UTC)
    body: dict[str, Any] = {
        "id": reading_id,
        "device": {"serial": patient.serials[reading_type]},
        "type": reading_type,
        "time": moment.isoformat(),
        "unit": UNITS[reading_type],
        ("values" if isinstance(value, dict) else "value"): value,
    }
    gateway.publish(gateway_id, {"sent_at": datetime.now(UTC).isoformat(), "readings": [body]})
    return reading_id


async def answered(gateway: Gateway, gateway_id: str, reading_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Until the worker has acknowledged the reading (its transaction committed): its result."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not gateway.results.get((gateway_id, reading_id)):
        assert asyncio.get_running_loop().time() < deadline, f"no ack for {reading_id} within {timeout}s"
        await asyncio.sleep(0.02)
    return gateway.results[(gateway_id, reading_id)][0]


async def accepted(gateway: Gateway, gateway_id: str, reading_id: str, timeout: float = 10.0) -> None:
    """Until the worker has acknowledged the reading as stored (its transaction committed)."""
    result = await answered(gateway, gateway_id, reading_id, timeout)
    assert result["status"] == "accepted", result
