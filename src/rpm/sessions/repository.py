"""Queries on web sessions and sign-ins under way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.sessions.models import WebSession, WebSignIn


async def add(session: AsyncSession, row: WebSession | WebSignIn) -> None:
    session.add(row)
    await session.flush()


async def live(session: AsyncSession, session_id: str, now: datetime, idle_since: datetime) -> WebSession | None:
    """The session if it has neither expired nor been idle since before `idle_since`."""
    return await session.scalar(
        select(WebSession).where(
            WebSession.id == session_id, WebSession.expires_at > now, WebSession.last_seen_at > idle_since
        )
    )


async def touch(session: AsyncSession, session_id: str, now: datetime) -> None:
    await session.execute(update(WebSession).where(WebSession.id == session_id).values(last_seen_at=now))


async def set_language(session: AsyncSession, session_id: str, language: str) -> None:
    await session.execute(update(WebSession).where(WebSession.id == session_id).values(language=language))


async def end(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == session_id))


async def take_sign_in(session: AsyncSession, sign_in_id: str, now: datetime) -> WebSignIn | None:
    """The sign-in under way with this id, removed (a `state` is good for one return only)."""
    found = await session.scalar(
        delete(WebSignIn)
        .where(WebSignIn.id == sign_in_id)
        .returning(WebSignIn)
        .execution_options(synchronize_session=False)
    )
    return found if found is not None and found.expires_at > now else None


async def forget_expired(session: AsyncSession, now: datetime, idle_since: datetime) -> None:
    await session.execute(
        delete(WebSession).where((WebSession.expires_at <= now) | (WebSession.last_seen_at <= idle_since))
    )
    await session.execute(delete(WebSignIn).where(WebSignIn.expires_at <= now))
