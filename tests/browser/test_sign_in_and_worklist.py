"""Signing in and out, sessions and CSRF, and the worklist with its live updates, in chromium
against the real API, ingest worker, broker and database.

The Done-means test of issue 8 is here: a breaching reading published over MQTT turns the
patient's row red on the open worklist within two seconds, without a reload.
"""

from __future__ import annotations

import asyncio
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, expect

from rpm.config import Environment
from tests.browser import harness
from tests.browser.harness import Site, accepted, expect_level, publish_reading, row_of

RED = re.compile(r"(^|\s)row-red(\s|$)")
OFFLINE_NB = "Forbindelsen er brutt. Listen oppdateres når den er tilbake."


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def path_of_url(url: str) -> str:
    return urlsplit(url).path


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


async def signed_out(site: Site, cookie: str) -> None:
    """A request with this session cookie reads nothing: pages send it to the sign-in, htmx
    fragments answer 401 with the way there, the event stream too."""
    async with site.client(rpm_session=cookie) as old:
        start = await old.get("/")
        assert start.status_code == 303 and start.headers["location"] == "/login?next=/", start.headers
        fragment = await old.get(
            "/worklist/rows", headers={"HX-Request": "true", "HX-Current-URL": f"{site.url}/?condition=copd"}
        )
        assert fragment.status_code == 401
        assert fragment.headers["hx-redirect"] == "/login?next=/%3Fcondition%3Dcopd"  # back to the page shown
        assert "<tr" not in fragment.text
        fragment_without_htmx = await old.get("/worklist/rows")
        assert fragment_without_htmx.status_code == 303
        stream = await old.get("/events")
        assert stream.status_code == 303 and stream.headers["location"].startswith("/login")


# -- signing in and out --------------------------------------------------------------------


async def test_development_sign_in_as_a_nurse_shows_the_worklist_and_sign_out_ends_the_session(
    page: Page, site: Site, organisation: str, committed, screenshot
):
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])

    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn")
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await page.get_by_label("Virksomhet").select_option(organisation)
    await page.get_by_label("Navn").fill("Nina Sykepleier")
    await screenshot(page, "sign-in")

    await harness.sign_in(page, organisation, "nurse", sub="nurse-1", name="Nina Sykepleier")
    assert path_of(page) == "/"
    await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")
    await expect(page.locator("header .who")).to_contain_text(f"Nina Sykepleier · {organisation}")
    await expect(row_of(page, kari.id)).to_contain_text("Kari Nordmann")
    await expect(page.get_by_role("link", name="Administrasjon")).to_have_count(0)  # a nurse is no admin
    cookie = await harness.session_cookie(page.context)

    await page.get_by_role("button", name="Logg ut").click()
    await page.wait_for_url(re.compile(r"/login$"))
    assert [c for c in await page.context.cookies() if c["name"] == "rpm_session"] == []
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))

    # The old cookie, put back, reads nothing: the session is gone on the server.
    await page.context.add_cookies([cookie])  # type: ignore[list-item]
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    await signed_out(site, cookie["value"])


async def test_a_signed_out_session_cannot_read_a_fragment_the_open_page_asks_for(
    page: Page, site: Site, organisation: str, committed
):
    """Signed out in another tab: the open worklist's next refresh takes it to the sign-in,
    and signing in again returns to the worklist as it was (not to the fragment it asked for)."""
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    await harness.sign_in(page, organisation, "nurse", next="/?condition=copd")
    await harness.stream_opened(page)
    other = await page.context.new_page()
    await other.goto("/")
    await other.get_by_role("button", name="Logg ut").click()
    await other.wait_for_url(re.compile(r"/login$"))

    await page.evaluate("htmx.trigger('#rows-refresh', 'catch-up')")
    await page.wait_for_url(re.compile(r"/login\?next="))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn")
    assert query_of(page.url)["next"] == ["/?condition=copd"]

    await page.get_by_label("Virksomhet").select_option(organisation)
    await page.get_by_role("button", name="Logg inn").click()
    await page.wait_for_url(lambda url: path_of_url(url) == "/" and query_of(url)["condition"] == ["copd"])
    await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")
    await expect(row_of(page, kari.id)).to_be_visible()


async def test_an_admin_sees_the_administration_link(page: Page, organisation: str):
    await harness.sign_in(page, organisation, "admin", "nurse", sub="admin-1")
    await expect(page.get_by_role("link", name="Administrasjon")).to_be_visible()


# -- the worklist, live --------------------------------------------------------------------


async def test_a_breaching_reading_over_mqtt_turns_the_row_red_within_two_seconds_without_reload(
    page: Page, organisation: str, committed, worker, gateway, screenshot
):
    """Done means: the nurse has the worklist open; a COPD patient's gateway sends SpO2 83 %
    (red below 84 with the COPD template); the row turns red, and says so, within 2 s."""
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    ola = await harness.add_patient(committed, organisation, "Ola Hansen", conditions=["heart-failure"])
    per = await harness.add_patient(committed, organisation, "Per Olsen", conditions=["hypertension"])
    for patient, value in ((kari, 90), (ola, 93), (per, 97)):  # 93 is yellow with the general template
        await accepted(gateway, "hub-1", publish_reading(gateway, patient, "spo2", value))

    await harness.sign_in(page, organisation, "nurse", name="Nina Sykepleier")
    await expect_level(page, kari.id, "green", "Grønn")
    await expect_level(page, ola.id, "yellow", "Gul")
    await harness.stream_opened(page)
    await harness.mark_no_reload(page)

    started = time.monotonic()
    publish_reading(gateway, kari, "spo2", 83)
    await expect_level(page, kari.id, "red", "Rød", timeout=2_000)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"the row turned red after {elapsed:.2f} s"

    await harness.assert_no_reload(page)
    row = row_of(page, kari.id)
    await expect(row.locator(".value")).to_have_text("83 %")
    await expect(row.get_by_role("link", name=re.compile("Åpne varselet"))).to_be_visible()
    # Red first, then yellow, then the rest.
    await expect(page.locator("#rows tr")).to_have_count(3)
    order = await page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.patient)")
    assert order == [str(kari.id), str(ola.id), str(per.id)]
    await expect_level(page, per.id, "green", "Grønn")
    await screenshot(page, "worklist-turned-red")


async def test_the_page_shows_a_lost_connection_and_catches_up_when_it_is_back(
    page: Page, site: Site, organisation: str, committed, worker, gateway, screenshot
):
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    await harness.sign_in(page, organisation, "nurse")
    await harness.stream_opened(page)
    await harness.mark_no_reload(page)
    live = page.locator("#live")
    await expect(live).to_have_text("Oppdateres fortløpende")
    await expect(live).not_to_have_class(re.compile("offline"))

    # The connection goes: the server ends the stream and the browser cannot reach it again.
    await page.route("**/events", lambda route: route.abort("internetdisconnected"))
    harness.end_streams(site)
    await expect(live).to_have_class(re.compile(r"(^|\s)offline(\s|$)"))
    await expect(live).to_have_text(OFFLINE_NB)
    await expect(live).to_have_attribute("role", "status")  # read out by screen readers
    await screenshot(page, "worklist-offline")

    # An alert opens meanwhile; the page cannot know.
    await accepted(gateway, "hub-1", publish_reading(gateway, kari, "spo2", 82))
    await expect(row_of(page, kari.id)).not_to_have_class(RED)

    await page.unroute("**/events")
    await expect(live).not_to_have_class(re.compile("offline"), timeout=10_000)
    await expect(live).to_have_text("Oppdateres fortløpende")
    await expect_level(page, kari.id, "red", "Rød")
    await harness.assert_no_reload(page)


async def test_an_alert_raised_while_the_page_was_opening_shows(
    page: Page, organisation: str, committed, worker, gateway
):
    """The rows are read before the stream opens: what happened in between must show too."""
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    asked, release = asyncio.Event(), asyncio.Event()

    async def hold(route: Route) -> None:
        # The stream's request waits here: the rows are on the page, the stream not yet open.
        asked.set()
        await release.wait()
        await route.continue_()

    await page.route("**/events", hold)
    await harness.sign_in(page, organisation, "nurse")
    await asyncio.wait_for(asked.wait(), 10)
    await expect_level(page, kari.id, "green", "Grønn")
    await harness.mark_no_reload(page)

    await accepted(gateway, "hub-1", publish_reading(gateway, kari, "spo2", 80))
    release.set()
    await expect_level(page, kari.id, "red", "Rød", timeout=3_000)
    await harness.assert_no_reload(page)


async def test_alerts_in_quick_succession_all_show_on_a_slow_connection(
    page: Page, organisation: str, committed, worker, gateway
):
    """Each rows request takes a second (a tablet on a weak network): an alert that comes while
    one is under way is not lost, the list is fetched again after it."""
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    ola = await harness.add_patient(committed, organisation, "Ola Hansen")

    async def slow(route: Route) -> None:
        response = await route.fetch()  # what the server says now...
        await asyncio.sleep(1.0)  # ...reaches the browser a second later
        await route.fulfill(response=response)

    await harness.sign_in(page, organisation, "nurse")
    await harness.stream_opened(page)
    await harness.mark_no_reload(page)
    await page.route("**/worklist/rows*", slow)

    await accepted(gateway, "hub-1", publish_reading(gateway, kari, "spo2", 80))
    await accepted(gateway, "hub-1", publish_reading(gateway, ola, "spo2", 85))
    await expect_level(page, kari.id, "red", "Rød")
    await expect_level(page, ola.id, "red", "Rød")
    await harness.assert_no_reload(page)


# -- sessions and CSRF ---------------------------------------------------------------------


async def test_a_change_without_the_csrf_token_is_refused_and_with_it_accepted(
    browser: Browser, page: Page, site: Site, organisation: str
):
    await harness.sign_in(page, organisation, "nurse")
    token = await harness.csrf_token(page)
    assert await page.locator("form[action='/logout'] input[name=csrf_token]").input_value() == token

    without = await page.request.post("/logout", max_redirects=0)
    assert without.status == 403
    assert "csrf_token_invalid" in await without.text()
    wrong = await page.request.post("/logout", headers={"X-CSRF-Token": "not-the-token"}, max_redirects=0)
    assert wrong.status == 403
    wrong_field = await page.request.post("/logout", form={"csrf_token": token[:-1]}, max_redirects=0)
    assert wrong_field.status == 403
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")  # still signed in

    # Another session's token is no good either: a token belongs to its session.
    other = await harness.open_tab(browser, site.url)
    try:
        await harness.sign_in(other.page, organisation, "nurse", sub="nurse-2")
        foreign = await page.request.post(
            "/logout", headers={"X-CSRF-Token": await harness.csrf_token(other.page)}, max_redirects=0
        )
        assert foreign.status == 403
    finally:
        await other.context.close()

    accepted_ = await page.request.post("/logout", headers={"X-CSRF-Token": token}, max_redirects=0)
    assert accepted_.status == 303 and accepted_.headers["location"] == "/login"
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))


async def test_another_site_cannot_post_with_the_nurses_session(page: Page, site: Site, organisation: str):
    """A page elsewhere submits a form to the service: the SameSite cookie does not go with it,
    so nothing happens in the nurse's name (and it could not know the CSRF token anyway)."""
    await harness.sign_in(page, organisation, "nurse")
    token = await harness.csrf_token(page)
    evil = "http://evil.example/"
    await page.route(
        evil,
        lambda route: route.fulfill(
            content_type="text/html",
            body=f"<form id=f method=post action='{site.url}/logout'>"
            f"<input name=csrf_token value='{token}'></form><script>f.submit()</script>",
        ),
    )
    async with page.expect_response(f"{site.url}/logout") as answer:
        await page.goto(evil)
    assert (await answer.value).status == 401  # no session came with the post
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")  # still signed in


async def test_the_session_cookie_is_http_only_same_site_lax_in_the_browser(page: Page, organisation: str):
    await harness.sign_in(page, organisation, "nurse")
    cookie = await harness.session_cookie(page.context)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http in development
    assert cookie["path"] == "/"
    assert await page.evaluate("document.cookie.includes('rpm_session')") is False  # no script reads it


def cookie_attributes(set_cookie: str) -> tuple[str, dict[str, str]]:
    name_value, *attributes = (part.strip() for part in set_cookie.split(";"))
    flags = {}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        flags[key.lower()] = value.lower()
    return name_value, flags


@pytest.mark.parametrize("secure", [True, False, None])
async def test_the_session_cookie_flags_follow_the_setting(settings, engine, organisation: str, secure):
    variant = settings.model_copy(update={"web_cookie_secure": secure})
    async with harness.asgi(variant, engine) as http:
        response = await http.post(
            "/login/development", data={"organisation": organisation, "roles": ["nurse"], "sub": "nurse-1"}
        )
    assert response.status_code == 303
    [session] = [c for c in response.headers.get_list("set-cookie") if c.startswith("rpm_session=")]
    _, flags = cookie_attributes(session)
    assert "httponly" in flags
    assert flags["samesite"] == "lax"
    assert flags["path"] == "/"
    assert flags["max-age"] == str(int(variant.web_session_hours * 3600))
    # Unset: Secure when the request came over https, and always in production (tests/browser/test_oidc_sign_in.py).
    assert ("secure" in flags) is bool(secure)


async def test_production_refuses_the_development_sign_in(settings, engine, organisation: str):
    production = settings.model_copy(
        update={
            "environment": Environment.production,
            "dev_auth": False,
            "oidc_issuer": "https://helseid.example",
            "oidc_jwks_url": "https://helseid.example/jwks",
            "oidc_client_id": "rpm-web",
        }
    )
    async with harness.asgi(production, engine) as http:
        sign_in_page = await http.get("/login")
        assert sign_in_page.status_code == 200
        assert "/login/development" not in sign_in_page.text
        assert 'href="/login/issuer?next=/"' in sign_in_page.text
        refused = await http.post(
            "/login/development", data={"organisation": organisation, "roles": ["admin"], "sub": "intruder"}
        )
        assert refused.status_code == 403
        assert "development_sign_in_off" in refused.text
        assert "rpm_session" not in refused.headers.get("set-cookie", "")
        assert (await http.get("/")).status_code == 303  # not signed in


async def test_development_sign_in_is_refused_where_development_tokens_are_not_trusted(
    settings, engine, organisation: str
):
    async with harness.asgi(settings.model_copy(update={"dev_auth": False}), engine) as http:
        refused = await http.post(
            "/login/development", data={"organisation": organisation, "roles": ["nurse"], "sub": "nurse-1"}
        )
    assert refused.status_code == 403
    assert "rpm_session" not in refused.headers.get("set-cookie", "")


# -- filters, language, keyboard -----------------------------------------------------------


async def test_the_worklist_filters_by_condition_and_care_team_organisation_and_keeps_them_live(
    page: Page, organisation: str, committed, worker, gateway
):
    gp_office = await harness.add_organisation(committed, "Legekontor")
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    ola = await harness.add_patient(
        committed,
        organisation,
        "Ola Hansen",
        conditions=["diabetes"],
        devices=["blood-glucose"],
        also_followed_by=[gp_office],
    )
    per = await harness.add_patient(committed, organisation, "Per Olsen", conditions=["hypertension"])
    await harness.sign_in(page, organisation, "nurse")
    rows = page.locator("#rows tr[data-patient]")
    await expect(rows).to_have_count(3)

    await page.get_by_label("Diagnose").select_option("copd")
    await page.get_by_role("button", name="Filtrer").click()
    await page.wait_for_url(re.compile(r"condition=copd"))
    await expect(rows).to_have_count(1)
    await expect(row_of(page, kari.id)).to_be_visible()
    await expect(page.get_by_label("Diagnose")).to_have_value("copd")

    # The live list keeps the filter: an alert of a diabetes patient does not bring them in.
    await harness.stream_opened(page)
    async with page.expect_response(lambda r: "/worklist/rows" in r.url) as refreshed:
        await accepted(gateway, "hub-1", publish_reading(gateway, ola, "blood-glucose", 2.5))
    assert parse_qs(urlsplit((await refreshed.value).url).query)["condition"] == ["copd"]
    await expect(rows).to_have_count(1)
    await expect(row_of(page, kari.id)).to_be_visible()

    await page.get_by_label("Diagnose").select_option("")
    await page.get_by_label("Virksomhet i behandlingsteamet").select_option(gp_office)
    await page.get_by_role("button", name="Filtrer").click()
    await page.wait_for_url(re.compile(rf"organisation={gp_office}"))
    await expect(rows).to_have_count(1)
    await expect_level(page, ola.id, "red", "Rød")
    await expect(page.get_by_label("Virksomhet i behandlingsteamet")).to_have_value(gp_office)

    await page.get_by_label("Diagnose").select_option("hypertension")
    await page.get_by_role("button", name="Filtrer").click()
    await page.wait_for_url(re.compile(r"condition=hypertension"))
    await expect(rows).to_have_count(0)
    await expect(page.locator("#rows")).to_contain_text("Ingen pasienter.")

    await page.get_by_label("Virksomhet i behandlingsteamet").select_option("")
    await page.get_by_role("button", name="Filtrer").click()
    await page.wait_for_url(
        lambda url: query_of(url) == {"condition": ["hypertension"], "organisation": [""], "snoozed": ["hide"]}
    )
    await expect(rows).to_have_count(1)
    await expect(row_of(page, per.id)).to_be_visible()


async def test_the_language_switches_to_english_and_back(page: Page, organisation: str, committed, screenshot):
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    await harness.sign_in(page, organisation, "nurse")
    await expect(page.locator("html")).to_have_attribute("lang", "nb")

    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    assert path_of(page) == "/"
    await expect(row_of(page, kari.id)).to_contain_text("COPD")
    await expect(row_of(page, kari.id).locator(".level")).to_contain_text("Green")
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # The choice belongs to the session: it holds on the next page and in the live rows.
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    await expect(page.locator("#live")).to_have_text("Updates live")
    await harness.stream_opened(page)
    async with page.expect_response("**/worklist/rows*") as refreshed:
        await page.evaluate("htmx.trigger('#rows-refresh', 'catch-up')")
    assert (await refreshed.value).headers["content-language"] == "en"
    await expect(row_of(page, kari.id)).to_contain_text("COPD")
    await screenshot(page, "worklist-english")

    await page.get_by_role("link", name="Norsk").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await expect(row_of(page, kari.id)).to_contain_text("KOLS")


async def test_the_sign_in_page_switches_language_before_signing_in(page: Page):
    await page.goto("/login")
    await page.get_by_role("link", name="English").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def focused(page: Page) -> str:
    return str(
        await page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || e.getAttribute('name') || (e.textContent || '').trim() || e.tagName; })()"
        )
    )


async def test_the_keyboard_reaches_the_table_through_the_skip_link_and_the_filters(
    page: Page, organisation: str, committed
):
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    await harness.sign_in(page, organisation, "nurse")
    await expect(row_of(page, kari.id)).to_be_visible()
    await page.locator("body").focus()

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Hopp til innhold")
    await expect(skip).to_be_focused()
    box = await skip.bounding_box()
    assert box is not None and box["y"] >= 0 and box["x"] >= 0, f"the focused skip link is off screen: {box}"
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()

    order = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        order.append(await focused(page))
        if order[-1] == "Kari Nordmann":
            break
    assert order == ["condition", "organisation", "snoozed", "mine", "Filtrer", "Kari Nordmann"], order
    # Focus is visible: the focused link has an outline.
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), outline
    # And Enter on the focused patient opens them.
    assert await page.evaluate("document.activeElement.closest('tr').dataset.patient") == str(kari.id)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"**/patients/{kari.id}")


async def test_the_worklist_on_a_tablet(browser: Browser, site: Site, organisation: str, committed):
    """At 768 px the table still fits: nothing sticks out sideways but the table's own scroll."""
    await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    tab = await harness.open_tab(browser, site.url)
    try:
        await tab.page.set_viewport_size({"width": 768, "height": 1024})
        await harness.sign_in(tab.page, organisation, "nurse")
        width = await tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, f"the page is {width} px wide on a 768 px tablet"
    finally:
        await tab.context.close()
    assert not tab.errors
