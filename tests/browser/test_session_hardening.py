"""Sessions end when they should, and the page's answers are never cached or framed.

- Signing in again ends the browser's earlier session (its cookie reads nothing any more).
- An open event stream closes once its session is signed out (the heartbeat re-checks it).
- A failed issuer return uses up its state even though the request fails.
- Pages carry no-store, frame and referrer headers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from rpm.config import Settings
from rpm.sessions import service as web_sessions
from rpm.sessions.models import WebSignIn
from tests.browser import harness


async def sign_in(client, orgnr: str, sub: str = "nurse-1") -> str:
    r = await client.post("/login/development", data={"organisation": orgnr, "roles": ["nurse"], "sub": sub})
    assert r.status_code == 303, r.text
    return r.cookies["rpm_session"]


async def test_signing_in_again_ends_the_earlier_session(settings: Settings, engine: AsyncEngine, organisation):
    async with harness.serve(settings, engine) as site, site.client() as browser:
        first = await sign_in(browser, organisation)
        second = await sign_in(browser, organisation, sub="nurse-2")
        assert first != second
        async with site.client(rpm_session=first) as old:
            assert (await old.get("/")).status_code == 303  # to the sign-in page
        async with site.client(rpm_session=second) as new:
            assert (await new.get("/")).status_code == 200


async def test_an_open_stream_closes_when_its_session_is_signed_out(
    settings: Settings, engine: AsyncEngine, organisation
):
    quick = settings.model_copy(update={"sse_heartbeat_seconds": 0.2})
    async with harness.serve(quick, engine) as site, site.client() as browser:
        token = await sign_in(browser, organisation)
        async with site.client(rpm_session=token) as watcher, watcher.stream("GET", "/events") as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert await asyncio.wait_for(anext(lines), 5) == "retry: 2000"
            async with site.app.state.sessions() as session, session.begin():
                await web_sessions.end(session, token)

            async def drained() -> None:
                async for _ in lines:
                    pass

            await asyncio.wait_for(drained(), 5)  # the server ended it within a few heartbeats


async def test_a_failed_issuer_return_uses_up_its_state(settings: Settings, engine: AsyncEngine):
    async with harness.serve(settings, engine) as site:
        async with site.app.state.sessions() as session, session.begin():
            state, _, _, _ = await web_sessions.begin_sign_in(session, return_to="/", now=datetime.now(UTC))
        # Returns without this browser's sign-in cookie: refused, and the state is gone.
        r = await site.http.get("/auth/callback", params={"state": state, "code": "abc"})
        assert r.status_code == 303 and r.headers["location"] == "/login?failed=1"
        async with site.app.state.sessions() as session:
            assert await session.scalar(select(WebSignIn).where(WebSignIn.id == web_sessions.digest(state))) is None


async def test_pages_are_not_cached_framed_or_referred(settings: Settings, engine: AsyncEngine, organisation):
    async with harness.serve(settings, engine) as site, site.client() as browser:
        await sign_in(browser, organisation)
        for path in ("/", "/login"):
            headers = (await browser.get(path)).headers
            assert headers["cache-control"] == "no-store", path
            assert headers["x-frame-options"] == "DENY"
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "script-src 'self';" in headers["content-security-policy"]
            assert headers["referrer-policy"] == "no-referrer"
