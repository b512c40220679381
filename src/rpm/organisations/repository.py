"""Queries on organisations."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.repository import visible_patient_ids
from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember


async def by_orgnr(session: AsyncSession, orgnr: str) -> Organisation | None:
    return await session.scalar(select(Organisation).where(Organisation.orgnr == orgnr))


async def by_orgnrs(session: AsyncSession, orgnrs: Iterable[str]) -> dict[str, Organisation]:
    rows = await session.scalars(select(Organisation).where(Organisation.orgnr.in_(set(orgnrs))))
    return {o.orgnr: o for o in rows}


async def all_of(session: AsyncSession) -> list[Organisation]:
    return list(await session.scalars(select(Organisation).order_by(Organisation.name)))


async def in_care_teams_of(session: AsyncSession, orgnr: str, today: date) -> list[Organisation]:
    """The organisations following, today, any of the patients `orgnr` follows: the choices of
    the worklist's care-team filter."""
    followed = visible_patient_ids(orgnr, today)
    rows = await session.scalars(
        select(Organisation)
        .join(CareTeamMember, CareTeamMember.organisation_id == Organisation.id)
        .where(
            CareTeamMember.patient_id.in_(followed),
            CareTeamMember.period_from <= today,
            (CareTeamMember.period_to.is_(None)) | (CareTeamMember.period_to >= today),
        )
        .distinct()
        .order_by(Organisation.name)
    )
    return list(rows)
