"""Access decisions shared by every endpoint that touches a patient."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from rpm import norway
from rpm.access import repository
from rpm.access.staff import Staff
from rpm.errors import Forbidden, NotFound

# Care-team periods are calendar dates in Norway.
today = norway.today


async def require_patient(session: AsyncSession, staff: Staff, patient_id: uuid.UUID) -> None:
    """404 for a patient the caller's organisation may not read (neither in the care team
    today nor the out-of-hours partner of one of the patient's active alerts): existence is
    never revealed."""
    if not await repository.may_see(session, staff.orgnr, patient_id, today()):
        raise NotFound("not_found", "no such patient")


async def require_care_team(session: AsyncSession, staff: Staff, patient_id: uuid.UUID) -> None:
    """Changes to enrolment, devices, thresholds, plan and readings, and the patient's audit
    trail, are the care team's: 404 for a patient the caller may not read at all, 403
    `care_team_only` for an out-of-hours partner, which reads the patient and works the
    alerts while one is handed over to it, nothing more."""
    if await repository.follows(session, staff.orgnr, patient_id, today()):
        return
    if await repository.may_see(session, staff.orgnr, patient_id, today()):
        raise Forbidden("care_team_only", "only the patient's care team may do this; you are its out-of-hours partner")
    raise NotFound("not_found", "no such patient")


async def may_see_patient(session: AsyncSession, staff: Staff, patient_id: uuid.UUID) -> bool:
    return await repository.may_see(session, staff.orgnr, patient_id, today())
