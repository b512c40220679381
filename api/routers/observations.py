"""Observations staff work on: marking a reading entered in error. Reading and searching them
is the FHIR facade's (api/fhir)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter

from rpm.api.deps import ActorDep, SessionDep
from rpm.observations import service
from rpm.observations.schemas import EnteredInErrorIn, EnteredInErrorOut

router = APIRouter(prefix="/api/v1/observations", tags=["observations"])


@router.post("/{observation_id}/entered-in-error", response_model=EnteredInErrorOut)
async def entered_in_error(
    observation_id: uuid.UUID, payload: EnteredInErrorIn, session: SessionDep, actor: ActorDep
) -> EnteredInErrorOut:
    """Mark the reading (and what was derived from it) entered in error with a reason; alerts
    left without a valid reading are resolved by the system. 409 if already marked."""
    return await service.invalidate(session, actor, observation_id, payload.reason, datetime.now(UTC))
