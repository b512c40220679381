"""Queries on the staff members the service knows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Staff
from rpm.staff.models import StaffMember

# An HPR number the column cannot hold is not one (they are at most nine digits): left out
# rather than refusing the caller.
_HPR_LENGTH = 16


async def upsert(session: AsyncSession, staff: Staff, now: datetime) -> None:
    """Write the staff member down, or bring their name, HPR number and roles up to date."""
    hpr = staff.hpr if staff.hpr is not None and len(staff.hpr) <= _HPR_LENGTH else None
    statement = insert(StaffMember).values(
        sub=staff.sub,
        orgnr=staff.orgnr,
        name=staff.name,
        hpr=hpr,
        roles=sorted(staff.roles),
        first_seen_at=now,
        last_seen_at=now,
    )
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[StaffMember.sub, StaffMember.orgnr],
            set_={
                "name": excluded.name,
                "hpr": excluded.hpr,
                "roles": excluded.roles,
                "last_seen_at": func.greatest(StaffMember.last_seen_at, excluded.last_seen_at),
            },
        )
    )


# Listed by name (those without one last), then sub and organisation: the cursor is that key.
_UNNAMED = case((StaffMember.name.is_(None), 1), else_=0)
_NAME = func.coalesce(StaffMember.name, "")
DirectoryPosition = tuple[int, str, str, str]


def position_of(member: Any) -> DirectoryPosition:
    """The sort key of a StaffMember (or a StaffMemberOut), for the next page's cursor."""
    return (1 if member.name is None else 0, member.name or "", member.sub, member.orgnr)


async def of_organisations(
    session: AsyncSession, orgnrs: Any, *, after: DirectoryPosition | None, limit: int
) -> list[StaffMember]:
    """The staff members of the organisations (`orgnrs`: a query of organisation numbers), by
    name; up to `limit`, after the position `after`."""
    statement = select(StaffMember).where(StaffMember.orgnr.in_(orgnrs))
    if after is not None:
        statement = statement.where(tuple_(_UNNAMED, _NAME, StaffMember.sub, StaffMember.orgnr) > tuple_(*after))
    statement = statement.order_by(_UNNAMED, _NAME, StaffMember.sub, StaffMember.orgnr).limit(limit)
    return list(await session.scalars(statement))


async def member_of(session: AsyncSession, sub: str, orgnrs: Any) -> StaffMember | None:
    """The staff member `sub` of one of the organisations (`orgnrs`: a query of organisation
    numbers): of the one they were last seen working for, when several."""
    statement = (
        select(StaffMember)
        .where(StaffMember.sub == sub, StaffMember.orgnr.in_(orgnrs))
        .order_by(StaffMember.last_seen_at.desc(), StaffMember.orgnr)
        .limit(1)
    )
    return await session.scalar(statement)


async def names_of(session: AsyncSession, subs: set[str]) -> dict[str, str]:
    """The names the service knows for these subs (the newest seen, when several)."""
    if not subs:
        return {}
    rows = await session.execute(
        select(StaffMember.sub, StaffMember.name)
        .where(StaffMember.sub.in_(subs), StaffMember.name.is_not(None))
        .order_by(StaffMember.last_seen_at)
    )
    return {sub: name for sub, name in rows if name is not None}
