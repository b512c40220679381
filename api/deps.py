"""Typed dependency aliases: the session (the request's one commit point) and the caller."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Staff, staff_from_claims
from rpm.audit.service import Actor
from rpm.config import Settings
from rpm.errors import NotAuthenticated
from rpm.staff import service as staff_directory

log = logging.getLogger("rpm.api")


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
    staff = staff_from_claims(claims, settings)
    await remember_staff(request, staff)
    return staff


async def remember_staff(request: Request, staff: Staff, session: AsyncSession | None = None) -> None:
    """Write the caller down in the staff directory (so colleagues can assign them alerts), once
    per identity (sub, organisation, name, HPR number, roles) per process: a new name or role is
    written again. Without `session`, in a short transaction of its own, so that it stands
    whatever the request does (a bearer request holds no connection yet). With the request's
    `session` (the staff page, whose request holds a connection already: taking a second would
    let a burst of first requests after a restart wait on each other for the pool), in a
    savepoint of it, kept when the request commits. The request never fails for it: a failure
    is logged and tried again on the caller's next request."""
    seen: set[Staff] = request.app.state.staff_seen
    if staff in seen:
        return
    try:
        if session is not None:
            async with session.begin_nested():
                await staff_directory.seen(session, staff, datetime.now(UTC))
        else:
            async with request.app.state.sessions() as own, own.begin():
                await own.execute(text("set local lock_timeout = '2s'"))
                await staff_directory.seen(own, staff, datetime.now(UTC))
    except SQLAlchemyError as error:
        log.warning("could not write %s of %s down in the staff directory: %s", staff.sub, staff.orgnr, error)
        return
    seen.add(staff)


CurrentStaff = Annotated[Staff, Depends(get_current_staff)]


def get_actor(request: Request, staff: CurrentStaff) -> Actor:
    return Actor(staff=staff, request_id=request.state.request_id)


ActorDep = Annotated[Actor, Depends(get_actor)]
