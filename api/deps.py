"""Typed dependency aliases: the session (the request's one commit point) and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Staff, staff_from_claims
from rpm.audit.service import Actor
from rpm.config import Settings
from rpm.errors import NotAuthenticated


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed before the response leaves (audit of reads)."""
    async with request.app.state.sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit runs when the endpoint returns, before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_current_staff(request: Request, settings: SettingsDep) -> Staff:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("not_authenticated", "a bearer token is required")
    claims = await request.app.state.verifier.verify(token.strip())
    return staff_from_claims(claims, settings)


CurrentStaff = Annotated[Staff, Depends(get_current_staff)]


def get_actor(request: Request, staff: CurrentStaff) -> Actor:
    return Actor(staff=staff, request_id=request.state.request_id)


ActorDep = Annotated[Actor, Depends(get_actor)]
