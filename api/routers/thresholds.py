"""A patient's effective thresholds, and changing them (physician or admin)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.deps import ActorDep, SessionDep
from rpm.rules import service
from rpm.rules.schemas import ThresholdsChange

router = APIRouter(prefix="/api/v1/patients", tags=["thresholds"])


@router.get("/{patient_id}/thresholds")
async def read(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return await service.read_thresholds(session, actor, patient_id)


@router.put("/{patient_id}/thresholds")
async def change(
    patient_id: uuid.UUID, change: ThresholdsChange, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    return await service.change_thresholds(session, actor, patient_id, change)
