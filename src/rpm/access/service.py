"""Access decisions shared by every endpoint that touches a patient."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from rpm import norway
from rpm.access import repository
from rpm.access.staff import Staff
from rpm.errors import NotFound

# Care-team periods are calendar dates in Norway.
today = norway.today


async def require_patient(session: AsyncSession, staff: Staff, patient_id: uuid.UUID) -> None:
    """404 for a patient the caller's organisation does not follow: existence is never revealed."""
    if not await repository.may_see(session, staff.orgnr, patient_id, today()):
        raise NotFound("not_found", "no such patient")


async def may_see_patient(session: AsyncSession, staff: Staff, patient_id: uuid.UUID) -> bool:
    return await repository.may_see(session, staff.orgnr, patient_id, today())
