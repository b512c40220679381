"""Starting, resuming and ending staff sessions of the web page; PKCE for the sign-in.

A session lasts a working day from sign-in (`web_session_hours`) and ends sooner after
`web_idle_minutes` without a request. Its CSRF token is made with it and checked on every
change the page makes.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role, Staff
from rpm.sessions import repository
from rpm.sessions.models import WebSession, WebSignIn

LANGUAGES = ("nb", "en")
SIGN_IN_MINUTES = 10


def digest(token: str) -> str:
    """What the database keeps of a token the browser holds."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """PKCE S256 (RFC 7636): base64url(sha256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class Signed:
    """A live session: who, and what the page needs of it."""

    id: str
    staff: Staff
    csrf_token: str
    language: str


def _staff(data: dict[str, object]) -> Staff:
    roles = data.get("roles") or []
    assert isinstance(roles, list)
    return Staff(
        sub=str(data["sub"]),
        name=str(data["name"]) if data.get("name") else None,
        hpr=str(data["hpr"]) if data.get("hpr") else None,
        orgnr=str(data["orgnr"]),
        roles=frozenset(Role(r) for r in roles if r in Role.__members__),
    )


async def start(
    session: AsyncSession, staff: Staff, *, now: datetime, hours: float, language: str = "nb"
) -> tuple[str, Signed]:
    """A new session for `staff`: the token for the cookie, and the session."""
    token = new_token()
    row = WebSession(
        id=digest(token),
        staff={
            "sub": staff.sub,
            "name": staff.name,
            "hpr": staff.hpr,
            "orgnr": staff.orgnr,
            "roles": sorted(staff.roles),
        },
        csrf_token=new_token(),
        language=language if language in LANGUAGES else "nb",
        last_seen_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    await repository.add(session, row)
    return token, Signed(row.id, staff, row.csrf_token, row.language)


async def resume(session: AsyncSession, token: str, *, now: datetime, idle_minutes: float) -> Signed | None:
    """The live session the token names, marked as seen now; None if there is none."""
    row = await repository.live(session, digest(token), now, now - timedelta(minutes=idle_minutes))
    if row is None:
        return None
    await repository.touch(session, row.id, now)
    return Signed(row.id, _staff(row.staff), row.csrf_token, row.language)


async def alive(session: AsyncSession, token: str, *, now: datetime, idle_minutes: float) -> bool:
    """Whether the token's session is still live, without counting this as activity."""
    found = await repository.live(session, digest(token), now, now - timedelta(minutes=idle_minutes))
    return found is not None


async def forget_expired(session: AsyncSession, *, now: datetime, idle_minutes: float) -> None:
    """Remove ended sessions and sign-ins that were never finished."""
    await repository.forget_expired(session, now, now - timedelta(minutes=idle_minutes))


async def end(session: AsyncSession, token: str) -> None:
    await repository.end(session, digest(token))


async def choose_language(session: AsyncSession, signed: Signed, language: str) -> None:
    if language in LANGUAGES:
        await repository.set_language(session, signed.id, language)


async def begin_sign_in(session: AsyncSession, *, return_to: str, now: datetime) -> tuple[str, str, str, str]:
    """A sign-in under way: (state, browser cookie, PKCE challenge, nonce) for the redirect."""
    state, browser, verifier, nonce = new_token(), new_token(), secrets.token_urlsafe(64), new_token()
    await repository.add(
        session,
        WebSignIn(
            id=digest(state),
            browser=digest(browser),
            code_verifier=verifier,
            nonce=nonce,
            return_to=return_to,
            expires_at=now + timedelta(minutes=SIGN_IN_MINUTES),
        ),
    )
    return state, browser, code_challenge(verifier), nonce


async def finish_sign_in(session: AsyncSession, *, state: str, browser: str | None, now: datetime) -> WebSignIn | None:
    """The sign-in `state` names, if it began in this browser within the last minutes."""
    found = await repository.take_sign_in(session, digest(state), now)
    if found is None or browser is None or not secrets.compare_digest(found.browser, digest(browser)):
        return None
    return found
