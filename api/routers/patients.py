"""Enrolment, the nurse's worklist of patients, and one patient's record."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from rpm.api.deps import ActorDep, SessionDep, SettingsDep
from rpm.api.pagination import Cursor, CursorParam, Key, LimitParam, Moment, Page, Rank
from rpm.errors import InvalidInput
from rpm.patients import service
from rpm.patients.repository import FAR_FUTURE, FAR_PAST, WorklistKey
from rpm.patients.schemas import (
    Condition,
    PatientCreate,
    PatientOut,
    PatientPatch,
    PatientSort,
    PatientSummary,
    Priority,
)

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])

# The keyset of each sort, led by the sort's name so a cursor is refused under another sort.
WorklistPosition = (
    tuple[Literal["priority"], Rank, Moment, Key, uuid.UUID]
    | tuple[Literal["name"], Key, uuid.UUID]
    | tuple[Literal["last_reading", "-last_reading"], Moment, uuid.UUID]
)
WORKLIST_CURSOR: Cursor[WorklistPosition] = Cursor("patients", WorklistPosition)


def _position(sort: PatientSort, key: WorklistKey) -> WorklistPosition:
    if sort == "priority":
        return ("priority", key.priority, key.unacknowledged_since or FAR_FUTURE, key.name, key.id)
    if sort == "name":
        return ("name", key.name, key.id)
    return (sort, key.last_reading_at or FAR_PAST, key.id)


@router.post("", status_code=201, response_model=PatientOut)
async def enrol(payload: PatientCreate, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> PatientOut:
    return await service.enrol(session, actor, payload, settings.start_period_days)


@router.get("", response_model=Page[PatientSummary])
async def worklist(
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    sort: Annotated[
        PatientSort,
        Query(
            description="priority: red, yellow, missing measurement, then the rest, each by its oldest "
            "unacknowledged alert; name; last_reading (oldest first) or -last_reading"
        ),
    ] = "priority",
    condition: Condition | None = None,
    level: Annotated[Priority | None, Query(description="the patient's priority: red, yellow, missing, green")] = None,
    organisation: Annotated[
        str | None, Query(pattern=r"^[0-9]{9}$", description="only patients this organisation also follows")
    ] = None,
    status: Literal["active", "ended"] | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[PatientSummary]:
    """The caller's patients with their status: worst active alert level, the newest alert,
    the last reading of each type, overdue types of the plan and 7-day adherence."""
    position = WORKLIST_CURSOR.decode(cursor)
    if position is not None and position[0] != sort:
        raise InvalidInput("invalid_cursor", "cursor: given out for another sort")
    found = await service.worklist(
        session,
        actor,
        now=datetime.now(UTC),
        grace=timedelta(hours=settings.missing_grace_hours),
        sort=sort,
        after=position[1:] if position else None,
        limit=limit,
        status=status,
        condition=condition,
        priority=level,
        organisation=organisation,
    )
    keys = {summary.id: key for key, summary in found}
    return Page[PatientSummary].of(
        [summary for _, summary in found], limit, WORKLIST_CURSOR, lambda summary: _position(sort, keys[summary.id])
    )


@router.get("/{patient_id}", response_model=PatientOut)
async def read(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> PatientOut:
    return await service.read(session, actor, patient_id)


@router.patch("/{patient_id}", response_model=PatientOut)
async def change(patient_id: uuid.UUID, patch: PatientPatch, session: SessionDep, actor: ActorDep) -> PatientOut:
    return await service.change(session, actor, patient_id, patch)
