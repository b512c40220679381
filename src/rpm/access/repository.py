"""Which patients an organisation may see: those whose care team it is in today."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember


def visible_patient_ids(orgnr: str, today: date) -> Select[uuid.UUID]:
    return (
        select(CareTeamMember.patient_id)
        .join(Organisation, Organisation.id == CareTeamMember.organisation_id)
        .where(
            Organisation.orgnr == orgnr,
            CareTeamMember.period_from <= today,
            (CareTeamMember.period_to.is_(None)) | (CareTeamMember.period_to >= today),
        )
    )


async def may_see(session: AsyncSession, orgnr: str, patient_id: uuid.UUID, today: date) -> bool:
    statement = visible_patient_ids(orgnr, today).where(CareTeamMember.patient_id == patient_id).limit(1)
    return await session.scalar(statement) is not None


async def visible_among(
    session: AsyncSession, orgnr: str, patient_ids: Iterable[uuid.UUID], today: date
) -> set[uuid.UUID]:
    """Those of `patient_ids` the organisation may see."""
    wanted = set(patient_ids)
    if not wanted:
        return set()
    rows = await session.scalars(visible_patient_ids(orgnr, today).where(CareTeamMember.patient_id.in_(wanted)))
    return set(rows)
