"""Enrolment and the caller's patient list."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.deps import ActorDep, SessionDep
from api.pagination import CursorParam, LimitParam, decode_cursor, page
from rpm.errors import InvalidInput
from rpm.patients import service
from rpm.patients.schemas import PatientCreate, PatientOut, PatientPatch

router = APIRouter(prefix="/api/v1/patients", tags=["patients"])


@router.post("", status_code=201, response_model=PatientOut)
async def enrol(payload: PatientCreate, session: SessionDep, actor: ActorDep) -> PatientOut:
    return await service.enrol(session, actor, payload)


@router.get("")
async def list_patients(
    session: SessionDep,
    actor: ActorDep,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
    status: str | None = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor)
    try:
        after_id = uuid.UUID(after) if after else None
    except (ValueError, TypeError, AttributeError) as error:  # a cursor holding no UUID string
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this API gave out") from error
    items = await service.list_visible(session, actor, after=after_id, limit=limit + 1, status=status)
    return page(items, limit, lambda patient: str(patient.id))


@router.get("/{patient_id}", response_model=PatientOut)
async def read(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> PatientOut:
    return await service.read(session, actor, patient_id)


@router.patch("/{patient_id}", response_model=PatientOut)
async def change(patient_id: uuid.UUID, patch: PatientPatch, session: SessionDep, actor: ActorDep) -> PatientOut:
    return await service.change(session, actor, patient_id, patch)
