"""Signing in with OpenID Connect (authorisation code flow with PKCE) against a fake HelseID.

The service runs as in production (no development sign-in, the issuer's keys from its JWKS,
plain http only because the tests have no TLS); the issuer is tests/browser/fake_issuer.py on
its own port. The full flow signs in, in the browser; every way a sign-in can go wrong ends
without a session; the tokens stay on the server.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.async_api import Browser, Response, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from rpm.config import Environment, Settings
from tests.browser import harness
from tests.browser.fake_issuer import FakeIssuer, Identity
from tests.browser.harness import Site, row_of

CLIENT_ID = "rpm-web"


@dataclass
class Oidc:
    issuer: FakeIssuer
    site: Site


@asynccontextmanager
async def with_issuer(settings: Settings, engine: AsyncEngine, orgnr: str, **overrides: object) -> AsyncIterator[Oidc]:
    """The fake issuer on a port of its own, and the service in production mode trusting it."""
    issuer = FakeIssuer(client_id=CLIENT_ID, audience=settings.oidc_audience, settings=settings)
    issuer.identity = Identity(orgnr=orgnr)
    async with harness.serve_asgi(issuer.app) as url:
        issuer.url = url
        production = settings.model_copy(
            update={
                "environment": Environment.production,
                "dev_auth": False,
                "oidc_issuer": url,
                "oidc_client_id": CLIENT_ID,
                "oidc_jwks_url": f"{url}/jwks",
                "web_cookie_secure": False,
                **overrides,
            }
        )
        async with harness.serve(production, engine) as site:
            issuer.redirect_uris = {f"{site.url}/auth/callback"}
            yield Oidc(issuer, site)


@pytest.fixture
async def oidc(settings: Settings, engine: AsyncEngine, organisation: str) -> AsyncIterator[Oidc]:
    async with with_issuer(settings, engine, organisation) as running:
        yield running


# -- the steps of a sign-in, as a browser takes them ---------------------------------------


async def to_issuer(browser: httpx.AsyncClient, next: str = "/") -> str:
    """The service sends the browser to the issuer: the authorisation URL."""
    response = await browser.get("/login/issuer", params={"next": next})
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def issuer_answers(url: str) -> str:
    """The issuer signs the person in and sends the browser back: the callback URL."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


async def assert_not_signed_in(browser: httpx.AsyncClient, answer: httpx.Response) -> None:
    """The callback's answer set no session, leads to the sign-in or an error page, and the
    browser can read nothing afterwards."""
    assert answer.status_code != 200 or "Arbeidsliste" not in answer.text
    assert not any(c.startswith("rpm_session=") and not c.startswith('rpm_session="";') for c in set_cookies(answer))
    assert "rpm_session" not in browser.cookies
    if answer.status_code in (302, 303):
        assert urlsplit(answer.headers["location"]).path == "/login", answer.headers
        final = await browser.get(answer.headers["location"])
        assert final.status_code == 200 and "Logg inn med HelseID" in final.text
    else:
        assert answer.status_code in (400, 401, 403, 503), answer.status_code
        assert "Noe gikk galt" in answer.text  # the error page
    start = await browser.get("/")
    assert start.status_code == 303 and start.headers["location"].startswith("/login")


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


# -- the full flow -------------------------------------------------------------------------


async def test_signing_in_with_the_issuer_in_the_browser_shows_the_organisations_patients(
    browser: Browser, oidc: Oidc, organisation: str, committed, screenshot
):
    elsewhere = await harness.add_organisation(committed, "Annen kommune")
    kari = await harness.add_patient(committed, organisation, "Kari Nordmann", conditions=["copd"])
    per = await harness.add_patient(committed, elsewhere, "Per Olsen", conditions=["copd"])
    tab = await harness.open_tab(browser, oidc.site.url)
    received: list[asyncio.Task[str]] = []  # every header and body that reached the browser

    async def describe(response: Response) -> str:
        seen = f"{response.status} {response.url} {await response.all_headers()}"
        if not 300 <= response.status < 400 and urlsplit(response.url).path != "/events":  # a stream never ends
            seen += await response.text()
        return seen

    tab.page.on("response", lambda response: received.append(asyncio.ensure_future(describe(response))))
    try:
        page = tab.page
        await page.goto("/?condition=copd")
        await expect(page).to_have_url(re.compile(r"/login\?next="))
        await expect(page.locator("form[action='/login/development']")).to_have_count(0)  # production
        await screenshot(page, "sign-in-helseid")

        await page.get_by_role("link", name="Logg inn med HelseID").click()
        await page.wait_for_url(lambda url: urlsplit(url).path == "/" and "condition=copd" in url)
        await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")
        await expect(page.locator("header .who")).to_contain_text(f"Nina Sykepleier · {organisation}")
        await expect(row_of(page, kari.id)).to_be_visible()
        await expect(row_of(page, per.id)).to_have_count(0)  # another organisation's patient

        # The browser went to the issuer with PKCE S256 and came back with a code only.
        [asked] = oidc.issuer.authorisations
        assert asked["code_challenge_method"] == "S256" and asked["client_id"] == CLIENT_ID
        assert asked["redirect_uri"] == f"{oidc.site.url}/auth/callback"
        [exchanged] = oidc.issuer.token_requests
        assert exchanged["code_verifier"] not in str(asked)

        cookies = await page.context.cookies()
        assert {c["name"] for c in cookies} == {"rpm_session"}  # the sign-in's cookie is gone
        session = cookies[0]
        assert session["httpOnly"] and session["sameSite"] == "Lax"

        # No token reached the browser: not in a cookie, a page, a header, or storage.
        assert len(oidc.issuer.issued) == 2  # the ID token and the access token
        everything = [
            str(cookies),
            await page.evaluate("JSON.stringify([document.cookie, localStorage, sessionStorage])"),
        ]
        everything += await asyncio.gather(*received)
        assert any("/auth/callback" in seen for seen in everything)
        assert any(f"{oidc.issuer.url}/authorize" in seen for seen in everything)
        assert any("Kari Nordmann" in seen for seen in everything)
        for token in oidc.issuer.issued:
            for part in token.split("."):  # not even a part of one
                assert all(part not in seen for seen in everything)
    finally:
        await tab.context.close()
    assert not tab.errors


async def test_the_code_is_exchanged_with_the_pkce_verifier_server_side(oidc: Oidc):
    async with oidc.site.client() as browser:
        authorise = await to_issuer(browser)
        assert "rpm_sign_in" in browser.cookies
        callback = await issuer_answers(authorise)
        answer = await browser.get(callback)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert "rpm_session" in browser.cookies and "rpm_sign_in" not in browser.cookies
        assert (await browser.get("/")).status_code == 200
    [asked] = oidc.issuer.authorisations
    [exchanged] = oidc.issuer.token_requests
    verifier = exchanged["code_verifier"]
    assert 43 <= len(verifier) <= 128 and verifier not in authorise
    assert asked["code_challenge"] != verifier
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32 and asked["state"] != asked["nonce"]
    assert exchanged["redirect_uri"] == asked["redirect_uri"]


# -- every way it can go wrong ends without a session --------------------------------------


async def test_a_wrong_state_ends_without_a_session(oidc: Oidc):
    async with oidc.site.client() as browser:
        callback = await issuer_answers(await to_issuer(browser))
        answer = await browser.get(with_query(callback, state="made-up-state"))
        await assert_not_signed_in(browser, answer)


async def test_a_sign_in_finished_in_another_browser_ends_without_a_session(oidc: Oidc):
    """The state alone is not enough: the browser that began the sign-in holds its cookie."""
    async with oidc.site.client() as began, oidc.site.client() as other:
        callback = await issuer_answers(await to_issuer(began))
        answer = await other.get(callback)
        await assert_not_signed_in(other, answer)
        # Nor with the cookie of a sign-in of its own: each state belongs to its browser.
        await to_issuer(other)
        answer = await other.get(callback)
        await assert_not_signed_in(other, answer)


async def test_a_replayed_state_ends_without_a_session(oidc: Oidc):
    async with oidc.site.client() as browser:
        authorise = await to_issuer(browser)
        sign_in_cookie = browser.cookies["rpm_sign_in"]
        callback = await issuer_answers(authorise)
        assert (await browser.get(callback)).status_code == 303  # signed in, once
    async with oidc.site.client(rpm_sign_in=sign_in_cookie) as replay:
        answer = await replay.get(callback)
        await assert_not_signed_in(replay, answer)


async def test_a_wrong_nonce_ends_without_a_session(oidc: Oidc):
    oidc.issuer.nonce = "a-nonce-from-another-sign-in"
    async with oidc.site.client() as browser:
        answer = await browser.get(await issuer_answers(await to_issuer(browser)))
        await assert_not_signed_in(browser, answer)


@pytest.mark.parametrize("kid", ["fake-helseid-1", "someone-elses-key"])
async def test_tokens_signed_with_an_untrusted_key_end_without_a_session(oidc: Oidc, kid: str):
    """Signed by a key not in the issuer's JWKS: under the trusted key's id, or another's."""
    oidc.issuer.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oidc.issuer.kid = kid
    async with oidc.site.client() as browser:
        answer = await browser.get(await issuer_answers(await to_issuer(browser)))
        await assert_not_signed_in(browser, answer)


@pytest.mark.parametrize("which", ["id_audience", "access_audience"])
async def test_tokens_meant_for_someone_else_end_without_a_session(oidc: Oidc, which: str):
    """An ID token for another client, or an access token for another API."""
    setattr(oidc.issuer, which, "another-client")
    async with oidc.site.client() as browser:
        answer = await browser.get(await issuer_answers(await to_issuer(browser)))
        await assert_not_signed_in(browser, answer)


async def test_an_error_from_the_issuer_ends_without_a_session(oidc: Oidc):
    oidc.issuer.error = "access_denied"
    async with oidc.site.client() as browser:
        callback = await issuer_answers(await to_issuer(browser))
        assert "error=access_denied" in callback and "code=" not in callback
        answer = await browser.get(callback)
        await assert_not_signed_in(browser, answer)


async def test_a_code_the_issuer_refuses_ends_without_a_session(oidc: Oidc):
    oidc.issuer.refuse_code = True
    async with oidc.site.client() as browser:
        answer = await browser.get(await issuer_answers(await to_issuer(browser)))
        assert answer.status_code == 503
        await assert_not_signed_in(browser, answer)


async def test_an_identity_without_an_organisation_ends_without_a_session(oidc: Oidc):
    oidc.issuer.identity = Identity(orgnr="not-an-orgnr")
    async with oidc.site.client() as browser:
        answer = await browser.get(await issuer_answers(await to_issuer(browser)))
        assert answer.status_code == 403
        await assert_not_signed_in(browser, answer)


async def test_after_a_failed_sign_in_the_next_one_lands_on_the_worklist(browser: Browser, oidc: Oidc):
    """A failed return from the issuer leads to the sign-in page; signing in from there goes
    to the worklist, not back to the failed return."""
    tab = await harness.open_tab(browser, oidc.site.url)
    try:
        page = tab.page
        oidc.issuer.error = "access_denied"
        await page.goto("/login")
        await page.get_by_role("link", name="Logg inn med HelseID").click()
        await page.wait_for_url(lambda url: urlsplit(url).path == "/login")
        assert [c for c in await page.context.cookies() if c["name"] == "rpm_session"] == []
        # The sign-in page says why the nurse is back.
        await expect(page.get_by_role("alert")).to_have_text("Innloggingen ble ikke fullført. Prøv igjen.")

        oidc.issuer.error = None
        await page.get_by_role("link", name="Logg inn med HelseID").click()
        await page.wait_for_url(lambda url: urlsplit(url).path == "/")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Arbeidsliste")
    finally:
        await tab.context.close()
    assert not tab.errors


async def test_in_production_the_session_cookie_is_secure_unless_told_otherwise(
    settings: Settings, engine: AsyncEngine, organisation: str
):
    async with (
        with_issuer(settings, engine, organisation, web_cookie_secure=None) as running,
        running.site.client() as browser,
    ):
        began = await browser.get("/login/issuer", params={"next": "/"})
        [sign_in_cookie] = [c for c in set_cookies(began) if c.startswith("rpm_sign_in=")]
        assert "secure" in sign_in_cookie.lower() and "httponly" in sign_in_cookie.lower()
        # httpx keeps Secure cookies for https only, as a browser does: hand it over by hand.
        value = sign_in_cookie.split(";")[0].split("=", 1)[1]
        callback = await issuer_answers(began.headers["location"])
        async with running.site.client(rpm_sign_in=value) as same_browser:
            answer = await same_browser.get(callback)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        [session] = [c for c in set_cookies(answer) if c.startswith("rpm_session=")]
        flags = {part.strip().lower() for part in session.split(";")[1:]}
        assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags, flags
