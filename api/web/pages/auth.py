"""Signing in and out of the staff page, and the choice of language.

Production: OpenID Connect authorisation code flow with PKCE against the configured issuer;
the access token's claims say who the staff member is, as for the API (api.md). Development:
a form that picks an identity, refused unless development tokens are trusted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rpm.access.staff import Role, Staff, staff_from_claims
from rpm.api.deps import SessionDep, SettingsDep
from rpm.api.web.deps import SESSION_COOKIE, SIGN_IN_COOKIE, SignedIn, check_csrf, current_session
from rpm.api.web.render import page
from rpm.config import Environment, Settings
from rpm.errors import Forbidden, NotAuthenticated
from rpm.organisations import repository as organisations
from rpm.sessions import service as sessions

router = APIRouter(tags=["staff page"], include_in_schema=False)


def _local(path: str | None) -> str:
    """A return address on this site only: never somewhere else after signing in, and never the
    sign-in itself (a failed return from the issuer, retried after the next sign-in, fails again)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return "/" if path.startswith(("/login", "/auth/", "/logout")) else path


def _secure(request: Request, settings: Settings) -> bool:
    if settings.web_cookie_secure is not None:
        return settings.web_cookie_secure
    return settings.environment is Environment.production or request.url.scheme == "https"


def _redirect_uri(request: Request, settings: Settings) -> str:
    base = settings.public_url.rstrip("/") if settings.public_url else str(request.base_url).rstrip("/")
    return f"{base}/auth/callback"


def _dev_sign_in_allowed(settings: Settings) -> bool:
    return settings.environment is Environment.development and settings.dev_auth


async def _signed_in(
    request: Request, session: SessionDep, settings: Settings, staff: Staff, return_to: str
) -> RedirectResponse:
    language = request.cookies.get("rpm_lang", "nb")
    earlier = request.cookies.get(SESSION_COOKIE)
    if earlier:  # signing in again ends the session this browser had
        await sessions.end(session, earlier)
    token, _ = await sessions.start(
        session, staff, now=datetime.now(UTC), hours=settings.web_session_hours, language=language
    )
    response = RedirectResponse(_local(return_to), 303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.web_session_hours * 3600),
        httponly=True,
        secure=_secure(request, settings),
        samesite="lax",  # sent on the issuer's redirect back (a top-level GET), never on other sites' posts
        path="/",
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.get("/login", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, session: SessionDep, settings: SettingsDep, next: str | None = None, failed: bool = False
) -> HTMLResponse:
    """The sign-in page: the issuer's button, and in development the identity form."""
    known = await organisations.all_of(session) if _dev_sign_in_allowed(settings) else []
    return page(
        request,
        "sign_in.html",
        next=_local(next),
        issuer=bool(settings.oidc_issuer and settings.oidc_client_id),
        development=_dev_sign_in_allowed(settings),
        organisations=known,
        roles=[r.value for r in Role],
        failed=failed,
    )


@router.post("/login/development")
async def development_sign_in(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    organisation: Annotated[str, Form(pattern=r"^[0-9]{9}$")],
    roles: Annotated[list[Role], Form(min_length=1)],
    sub: Annotated[str, Form(min_length=1, max_length=200)],
    name: Annotated[str | None, Form(max_length=200)] = None,
    next: Annotated[str | None, Form()] = None,
) -> Response:
    """Sign in as any staff member: development only (RPM_DEV_AUTH=true outside production)."""
    if not _dev_sign_in_allowed(settings):
        raise Forbidden("development_sign_in_off", "development sign-in is off: sign in with the configured issuer")
    staff = Staff(sub=sub, name=name or None, hpr=None, orgnr=organisation, roles=frozenset(roles))
    return await _signed_in(request, session, settings, staff, next or "/")


@router.get("/login/issuer")
async def begin_issuer_sign_in(
    request: Request, session: SessionDep, settings: SettingsDep, next: str | None = None
) -> Response:
    """To the issuer, with a PKCE challenge, a state bound to this browser, and a nonce."""
    client = request.app.state.oidc
    if not client.configured:
        raise Forbidden(
            "issuer_not_configured", "no sign-in service is configured (RPM_OIDC_ISSUER, RPM_OIDC_CLIENT_ID)"
        )
    await sessions.forget_expired(session, now=datetime.now(UTC), idle_minutes=settings.web_idle_minutes)
    state, browser, challenge, nonce = await sessions.begin_sign_in(
        session, return_to=_local(next), now=datetime.now(UTC)
    )
    target = await client.authorisation_url(
        redirect_uri=_redirect_uri(request, settings), state=state, challenge=challenge, nonce=nonce
    )
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SIGN_IN_COOKIE,
        browser,
        max_age=sessions.SIGN_IN_MINUTES * 60,
        httponly=True,
        secure=_secure(request, settings),
        samesite="lax",
        path="/",
    )
    return response


@router.get("/auth/callback")
async def issuer_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=4000)] = "",
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The issuer's return: the code is exchanged (with the PKCE verifier) for tokens, whose
    claims become the session; the tokens themselves are not kept."""
    # The state is used up in a transaction of its own: a return that fails below cannot be
    # replayed, as it could if the failure rolled the request's transaction back.
    async with request.app.state.sessions() as own, own.begin():
        pending = await sessions.finish_sign_in(
            own, state=state, browser=request.cookies.get(SIGN_IN_COOKIE), now=datetime.now(UTC)
        )
    if pending is None or error or not code:
        raise NotAuthenticated("sign_in_failed", f"the sign-in did not complete{f' ({error})' if error else ''}")
    tokens = await request.app.state.oidc.exchange(
        code=code, redirect_uri=_redirect_uri(request, settings), verifier=pending.code_verifier
    )
    verifier = request.app.state.verifier
    try:
        identity = await verifier.verify(str(tokens.get("id_token", "")), audience=settings.oidc_client_id)
        claims = await verifier.verify(str(tokens.get("access_token", "")))
    except NotAuthenticated as refused:
        raise NotAuthenticated(
            "sign_in_failed", f"the sign-in service's tokens were refused: {refused.detail}"
        ) from None
    if identity.get("nonce") != pending.nonce:
        raise NotAuthenticated("sign_in_failed", "the sign-in's nonce does not match")
    if identity.get("sub") != claims.get("sub"):
        raise NotAuthenticated("sign_in_failed", "the identity and access tokens name different people")
    staff = staff_from_claims({**claims, "name": claims.get("name") or identity.get("name")}, settings)
    return await _signed_in(request, session, settings, staff, pending.return_to)


@router.post("/logout")
async def sign_out(request: Request, session: SessionDep, signed: SignedIn) -> Response:
    await check_csrf(request, signed)
    await sessions.end(session, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/language")
async def choose_language(
    request: Request,
    session: SessionDep,
    to: Annotated[str, Query(pattern="^(nb|en)$")],
    next: str | None = None,
) -> Response:
    """Norwegian or English: kept in a cookie, and in the session when signed in."""
    try:
        signed = await current_session(request, session, request.app.state.settings)
    except NotAuthenticated:
        signed = None
    if signed is not None:
        await sessions.choose_language(session, signed, to)
    response = RedirectResponse(_local(next), 303)
    response.set_cookie("rpm_lang", to, max_age=365 * 24 * 3600, samesite="lax", path="/")
    return response
