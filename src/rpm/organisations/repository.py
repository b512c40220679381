"""Queries on organisations."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.organisations.models import Organisation


async def by_orgnr(session: AsyncSession, orgnr: str) -> Organisation | None:
    return await session.scalar(select(Organisation).where(Organisation.orgnr == orgnr))


async def by_orgnrs(session: AsyncSession, orgnrs: Iterable[str]) -> dict[str, Organisation]:
    rows = await session.scalars(select(Organisation).where(Organisation.orgnr.in_(set(orgnrs))))
    return {o.orgnr: o for o in rows}


async def all_of(session: AsyncSession) -> list[Organisation]:
    return list(await session.scalars(select(Organisation).order_by(Organisation.name)))
