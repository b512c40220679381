"""The staff directory: who may be assigned a patient's alerts."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.pagination import Cursor, CursorParam, Key, LimitParam, Page, Rank
from rpm.staff import service
from rpm.staff.schemas import StaffMemberOut

router = APIRouter(prefix="/api/v1/staff", tags=["staff"])
DirectoryPosition = tuple[Rank, Key, Key, Key]  # unnamed last, name, sub, organisation
STAFF_CURSOR: Cursor[DirectoryPosition] = Cursor("staff", DirectoryPosition)


@router.get("", response_model=Page[StaffMemberOut])
async def directory(
    session: SessionDep,
    actor: ActorDep,
    patient: uuid.UUID | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[StaffMemberOut]:
    """Who may be assigned the patient's alerts: the staff members the service knows of the
    organisations that may see the patient (its care team today and, while an alert is handed
    over, the out-of-hours partner), by name; without `patient`, the caller's organisation's.
    404 for a patient the caller may not see."""
    found = await service.colleagues(session, actor, patient, after=STAFF_CURSOR.decode(cursor), limit=limit)
    return Page[StaffMemberOut].of(found, limit, STAFF_CURSOR, service.position_of)
