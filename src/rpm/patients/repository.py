"""Queries on patients, their care team and measurement plan."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from rpm.access.repository import visible_patient_ids
from rpm.patients.models import CareTeamMember, Patient

_FULL = (
    selectinload(Patient.care_team).selectinload(CareTeamMember.organisation),
    selectinload(Patient.measurement_plan),
)


async def by_identifier(session: AsyncSession, identifier: str) -> Patient | None:
    return await session.scalar(select(Patient).where(Patient.identifier == identifier))


async def full(session: AsyncSession, patient_id: uuid.UUID) -> Patient | None:
    """The patient with care team and plan loaded (the relationships are lazy="raise")."""
    return await session.scalar(
        select(Patient).where(Patient.id == patient_id).options(*_FULL).execution_options(populate_existing=True)
    )


async def visible_page(
    session: AsyncSession,
    orgnr: str,
    today: date,
    *,
    after: uuid.UUID | None,
    limit: int,
    status: str | None = None,
    identifier: str | None = None,
) -> Sequence[Patient]:
    statement = select(Patient).where(Patient.id.in_(visible_patient_ids(orgnr, today))).options(*_FULL)
    if status is not None:
        statement = statement.where(Patient.status == status)
    if identifier is not None:
        statement = statement.where(Patient.identifier == identifier)
    if after is not None:
        statement = statement.where(Patient.id > after)
    return (await session.scalars(statement.order_by(Patient.id).limit(limit))).all()


async def clear_care_team(session: AsyncSession, patient_id: uuid.UUID) -> None:
    await session.execute(delete(CareTeamMember).where(CareTeamMember.patient_id == patient_id))
