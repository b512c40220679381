"""A patient's effective thresholds, changing them (physician or admin), previewing a change, and
the start period's proposal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from rpm.api.deps import ActorDep, SessionDep
from rpm.rules import service
from rpm.rules.schemas import (
    EffectiveThresholdsOut,
    ThresholdProposalDecision,
    ThresholdProposalOut,
    ThresholdsChange,
    ThresholdsPreviewIn,
    ThresholdsPreviewOut,
)

router = APIRouter(prefix="/api/v1/patients", tags=["thresholds"])


@router.get("/{patient_id}/thresholds", response_model=EffectiveThresholdsOut)
async def read(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """The bands by LOINC code and the weight-gain rule, each with its source."""
    return await service.read_thresholds(session, actor, patient_id)


@router.put("/{patient_id}/thresholds", response_model=EffectiveThresholdsOut)
async def change(
    patient_id: uuid.UUID, change: ThresholdsChange, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """A new version of the overrides, with its reason; it applies to readings arriving afterwards."""
    return await service.change_thresholds(session, actor, patient_id, change)


@router.post("/{patient_id}/thresholds/preview", response_model=ThresholdsPreviewOut)
async def preview(
    patient_id: uuid.UUID, proposal: ThresholdsPreviewIn, session: SessionDep, actor: ActorDep
) -> ThresholdsPreviewOut:
    """How many alerts of each level the proposed thresholds would have raised over the last
    `days` days, and when, judged by the rules that judge live readings. Nothing is stored."""
    return await service.preview_thresholds(session, actor, patient_id, proposal, datetime.now(UTC))


@router.get("/{patient_id}/threshold-proposal", response_model=ThresholdProposalOut)
async def proposal(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> ThresholdProposalOut:
    """The bands proposed from the patient's own readings at the end of their start period,
    with what each rests on, and the decision on them. Preview them with `thresholds/preview`."""
    return await service.read_proposal(session, actor, patient_id)


@router.post("/{patient_id}/threshold-proposal/decision", response_model=ThresholdProposalOut)
async def decide(
    patient_id: uuid.UUID, decision: ThresholdProposalDecision, session: SessionDep, actor: ActorDep
) -> ThresholdProposalOut:
    """Accept the proposal (as it is, or with `bands` edited: a new version of the overrides)
    or reject it, with the reason (physician or admin). Decided once."""
    return await service.decide_proposal(session, actor, patient_id, decision, datetime.now(UTC))
