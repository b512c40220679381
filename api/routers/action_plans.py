"""A patient's self-management plan: the action agreed with the GP for each level, in force
and as versions; changing it (physician or admin) makes a new version with its reason."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from rpm.action_plans import service
from rpm.action_plans.schemas import ActionPlanChange, ActionPlanRecord
from rpm.api.deps import ActorDep, SessionDep

router = APIRouter(prefix="/api/v1/patients", tags=["action plans"])


@router.get("/{patient_id}/action-plan", response_model=ActionPlanRecord)
async def read(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ActionPlanRecord:
    """The plan in force (`null` when the patient has none) and every version, newest first."""
    return await service.plan_record(session, actor, patient_id)


@router.put("/{patient_id}/action-plan", response_model=ActionPlanRecord)
async def change(
    patient_id: uuid.UUID, change: ActionPlanChange, session: SessionDep, actor: ActorDep
) -> ActionPlanRecord:
    """A new version of the whole plan, with its reason; alerts reaching a level afterwards
    carry its action, alerts already open keep theirs."""
    return await service.change_plan(session, actor, patient_id, change)
