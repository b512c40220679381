"""The page's dependencies: the signed-in session from its cookie, the actor, the CSRF check."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role
from rpm.api.deps import SessionDep, SettingsDep, remember_staff
from rpm.audit.service import Actor
from rpm.errors import Forbidden, NotAuthenticated
from rpm.sessions import service as sessions
from rpm.sessions.service import Signed

SESSION_COOKIE = "rpm_session"
SIGN_IN_COOKIE = "rpm_sign_in"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SignInRequired(NotAuthenticated):
    """No live session: a page answers with the way to sign in (api.errors)."""


async def current_session(request: Request, session: SessionDep, settings: SettingsDep) -> Signed:
    token = request.cookies.get(SESSION_COOKIE)
    signed = None
    if token:
        signed = await sessions.resume(session, token, now=datetime.now(UTC), idle_minutes=settings.web_idle_minutes)
    if signed is None:
        raise SignInRequired("sign_in_required", "sign in to use the staff page")
    request.state.signed = signed
    return signed


SignedIn = Annotated[Signed, Depends(current_session)]


async def staff_session(request: Request, signed: SignedIn, session: SessionDep) -> Signed:
    """A session of someone with a role. Sign-in refuses a person with none; a session from
    before that rule is refused here (403), like a bearer token without a role, on everything
    but signing out and choosing the language. The staff member is written down in the staff
    directory, as the API does (api.deps.remember_staff)."""
    signed.staff.require(*Role)
    await remember_staff(request, signed.staff, session)
    return signed


StaffSession = Annotated[Signed, Depends(staff_session)]


async def check_csrf(request: Request, signed: StaffSession) -> Signed:
    """Every change carries the session's CSRF token: htmx in the X-CSRF-Token header, a plain
    form in its `csrf_token` field. A page of another site can make the browser send the
    cookie, but it cannot read the token."""
    if request.method in UNSAFE:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            field = (await request.form()).get("csrf_token")
            sent = field if isinstance(field, str) else None
        if not sent or not secrets.compare_digest(sent, signed.csrf_token):
            raise Forbidden("csrf_token_invalid", "the page's form has expired; reload it and try again")
    return signed


def web_actor(request: Request, signed: Annotated[Signed, Depends(check_csrf)]) -> Actor:
    return Actor(staff=signed.staff, request_id=request.state.request_id)


@asynccontextmanager
async def attempt(session: AsyncSession) -> AsyncIterator[None]:
    """A change that may be refused and answered with the form again: in a savepoint, so what a
    refused service call had flushed is undone while the request's transaction (and the page
    it answers) carries on."""
    async with session.begin_nested():
        yield


# Every page route takes the actor: signed in, and for a change, with the CSRF token.
WebActor = Annotated[Actor, Depends(web_actor)]
