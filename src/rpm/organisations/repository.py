"""Queries on organisations."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import date
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.repository import in_care_team_on, visible_patient_ids
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
        .where(CareTeamMember.patient_id.in_(followed), in_care_team_on(today))
        .distinct()
        .order_by(Organisation.name)
    )
    return list(rows)


class CareTeamService(NamedTuple):
    """A care-team organisation of a patient (today) with what decides its alerts' service
    hours, escalation and out-of-hours partner."""

    patient_id: uuid.UUID
    organisation_id: uuid.UUID
    orgnr: str
    kind: str
    service_hours: dict[str, Any] | None
    escalate_red_minutes: int | None
    partner_id: uuid.UUID | None


async def care_team_services(
    session: AsyncSession, patient_ids: Collection[uuid.UUID], today: date
) -> dict[uuid.UUID, list[CareTeamService]]:
    """For each patient, the organisations of its care team today, in one query."""
    found: dict[uuid.UUID, list[CareTeamService]] = {p: [] for p in patient_ids}
    if not found:
        return found
    rows = await session.execute(
        select(
            CareTeamMember.patient_id,
            Organisation.id,
            Organisation.orgnr,
            Organisation.kind,
            Organisation.service_hours,
            Organisation.escalate_red_minutes,
            Organisation.out_of_hours_partner_id,
        )
        .join(Organisation, Organisation.id == CareTeamMember.organisation_id)
        .where(CareTeamMember.patient_id.in_(list(found)), in_care_team_on(today))
    )
    for row in rows:
        found[row[0]].append(CareTeamService(*row))
    return found


async def orgnrs_of(session: AsyncSession, organisation_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not organisation_ids:
        return {}
    rows = await session.execute(
        select(Organisation.id, Organisation.orgnr).where(Organisation.id.in_(list(organisation_ids)))
    )
    return {organisation_id: orgnr for organisation_id, orgnr in rows}


async def by_id(session: AsyncSession, organisation_id: uuid.UUID) -> Organisation | None:
    return await session.get(Organisation, organisation_id)


async def lock(session: AsyncSession, orgnr: str) -> Organisation | None:
    statement = select(Organisation).where(Organisation.orgnr == orgnr).with_for_update()
    return await session.scalar(statement.execution_options(populate_existing=True))
